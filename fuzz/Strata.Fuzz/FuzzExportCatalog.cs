using Strata.Block;
using Strata.Nbd.Server;

namespace Strata.Fuzz;

/// <summary>
/// What the NBD target serves: a small writable export and a read-only one, in memory, built afresh
/// for every run so no run sees another's writes. Both hold data, zeroes and never-written ranges, so
/// reads find holes and block status finds more than one kind of extent.
/// </summary>
internal sealed class FuzzExportCatalog : INbdExportCatalog
{
    /// <summary>The writable export; recorded sessions (fuzz/seeds.sh) connect to it by this name.</summary>
    public const string WritableName = "fuzz";

    public const string ReadOnlyName = "fuzz-ro";

    public const int ExportSize = 256 * 1024;

    private readonly NbdExport[] _exports;

    private FuzzExportCatalog(MemoryNode writable, MemoryNode readOnly)
    {
        ReadOnlyDisk = readOnly;
        // The read-only export's disk itself takes writes: the export alone must refuse them, which
        // HasReadOnlyDiskChanged checks after the session.
        _exports =
        [
            new NbdExport(WritableName, new RequestGate(writable), description: "writable memory disk"),
            new NbdExport(ReadOnlyName, new RequestGate(readOnly), readOnly: true),
        ];
    }

    private MemoryNode ReadOnlyDisk { get; }

    public static async Task<FuzzExportCatalog> CreateAsync()
        => new(await CreateDiskAsync(), await CreateDiskAsync());

    public IReadOnlyList<NbdExport> List() => _exports;

    public NbdExport? Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Length == 0 && _exports.Length == 1 ? _exports[0] : _exports.FirstOrDefault(e => e.Name == name);
    }

    /// <summary>True when anything reached the read-only export's disk.</summary>
    public async Task<bool> HasReadOnlyDiskChangedAsync()
    {
        var pristine = await CreateDiskAsync();
        return !pristine.ToArray().AsSpan().SequenceEqual(ReadOnlyDisk.ToArray());
    }

    /// <summary>Data in the first 64 KiB and at 128 KiB, written zeroes after the first, the rest never written.</summary>
    private static async Task<MemoryNode> CreateDiskAsync()
    {
        var disk = new MemoryNode(ExportSize);
        var data = new byte[64 * 1024];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)((i * 7) + 1);
        }

        await disk.WriteAsync(0, data);
        await disk.WriteZeroesAsync(64 * 1024, 32 * 1024);
        await disk.WriteAsync(128 * 1024, data.AsMemory(0, 16 * 1024));
        return disk;
    }
}
