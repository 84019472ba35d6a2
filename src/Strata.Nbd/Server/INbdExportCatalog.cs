namespace Strata.Nbd.Server;

/// <summary>The exports a server offers; the daemon's drives implement it.</summary>
public interface INbdExportCatalog
{
    /// <summary>Every export, for NBD_OPT_LIST.</summary>
    IReadOnlyList<NbdExport> List();

    /// <summary>The export called <paramref name="name"/>; the empty name is the default export when there is exactly one.</summary>
    NbdExport? Find(string name);
}
