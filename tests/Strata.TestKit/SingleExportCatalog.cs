using Strata.Nbd.Server;

namespace Strata.TestKit;

/// <summary>A catalog of one export, for serving a test node with a bare <see cref="NbdServer"/>.</summary>
public sealed class SingleExportCatalog(NbdExport export) : INbdExportCatalog
{
    public IReadOnlyList<NbdExport> List() => [export];

    public NbdExport? Find(string name) => name.Length == 0 || name == export.Name ? export : null;
}
