using Strata.Block;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>A tracked dirty_bitmap file is locked the way QEMU locks images: QEMU and Strata see each other (DESIGN.md rule 6).</summary>
public sealed class DirtyBitmapLockInteropTests : IDisposable
{
    private readonly TempFolder _dir = new("dbmp");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task AFileQemuWritesCannotBeTrackedAndTheErrorNamesQemu()
    {
        string path = _dir.File("t0.dbmp");
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        await (await files.CreateAsync(path, 1L << 30, 65536)).DisposeAsync();
        await using var qsd = await Qsd.ExportRawAsync(path, _dir.File("nbd.sock"));

        var e = await Assert.ThrowsAsync<BlockException>(async () => await files.OpenAsync(path));
        Assert.Equal(BlockError.Locked, e.Error);
        Assert.Contains("qemu-storage-daemon", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QemuCannotWriteAFileStrataTracksButMayReadIt()
    {
        string path = _dir.File("t0.dbmp");
        await using var store = await new DirtyBitmapFiles(StandardDrivers.Registry).CreateAsync(path, 1L << 30, 65536);

        var write = Processes.Run("qemu-io", "-f", "raw", "-c", "write 0 512", path);
        Assert.NotEqual(0, write.ExitCode);
        Assert.Contains("Failed to get \"write\" lock", write.Stderr + write.Stdout, StringComparison.Ordinal);
        Processes.Run("qemu-io", "-r", "-f", "raw", "-c", "read 0 512", path).AssertSuccess();
    }
}
