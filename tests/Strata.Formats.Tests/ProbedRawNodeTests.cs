using Strata.Block;
using Strata.Formats.Raw;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class ProbedRawNodeTests
{
    private const long Size = 1 << 20;

    private static readonly byte[] QcowMagic = [(byte)'Q', (byte)'F', (byte)'I', 0xfb];

    [Fact]
    public async Task AProbedRawImageOpensGuardedAndAnExplicitOneDoesNot()
    {
        using var dir = new TempFolder("probe");
        string image = CreateRaw(dir);
        await using (var probed = await ImageOpener.OpenAsync(image, new ImageOpenOptions()))
        {
            Assert.IsType<ProbedRawNode>(probed);
            Assert.Equal("raw", probed.DriverName);
        }

        await using var given = await ImageOpener.OpenAsync(image, new ImageOpenOptions { Format = "raw" });
        await given.WriteAsync(0, Qcow2Header());
        Assert.Equal("qcow2", ImageSignatures.Detect(await File.ReadAllBytesAsync(image)));
    }

    [Fact]
    public async Task AWriteThatMakesTheFirstSectorLookLikeQcow2IsRefusedAndChangesNothing()
    {
        using var dir = new TempFolder("probe");
        string image = CreateRaw(dir);
        byte[] before = await File.ReadAllBytesAsync(image);
        await using var node = await ImageOpener.OpenAsync(image, new ImageOpenOptions());
        var e = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, Qcow2Header()));
        Assert.Equal(BlockError.PermissionDenied, e.Error);
        Assert.Contains("qcow2", e.Message, StringComparison.Ordinal);
        await node.FlushAsync();
        Assert.Equal(before, await File.ReadAllBytesAsync(image));
    }

    [Fact]
    public async Task AHeaderBuiltFromTwoPartialWritesIsRefusedAtTheSecond()
    {
        using var dir = new TempFolder("probe");
        await using var node = await ImageOpener.OpenAsync(CreateRaw(dir), new ImageOpenOptions());
        await node.WriteAsync(0, QcowMagic.AsMemory(0, 2));
        var e = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(2, QcowMagic.AsMemory(2, 2)));
        Assert.Equal(BlockError.PermissionDenied, e.Error);
    }

    [Fact]
    public async Task ZeroingOrDiscardingThatCompletesAMagicIsRefused()
    {
        // "QED\0" is QED's magic: zeroing the fourth byte of "QEDX" would complete it.
        using var dir = new TempFolder("probe");
        await using var node = await ImageOpener.OpenAsync(CreateRaw(dir), new ImageOpenOptions());
        await node.WriteAsync(0, "QEDX"u8.ToArray());
        var zero = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteZeroesAsync(3, 1));
        Assert.Equal(BlockError.PermissionDenied, zero.Error);
        var discard = await Assert.ThrowsAsync<BlockException>(async () => await node.DiscardAsync(3, 1));
        Assert.Equal(BlockError.PermissionDenied, discard.Error);
        var read = new byte[4];
        await node.ReadAsync(0, read);
        Assert.Equal("QEDX"u8.ToArray(), read);
    }

    [Fact]
    public async Task OrdinaryWritesToTheFirstSectorAndHeadersElsewhereAreAllowed()
    {
        using var dir = new TempFolder("probe");
        string image = CreateRaw(dir);
        await using var node = await ImageOpener.OpenAsync(image, new ImageOpenOptions());
        var bootSector = new byte[512];
        new Random(11).NextBytes(bootSector.AsSpan(0, 446));
        bootSector[510] = 0x55;
        bootSector[511] = 0xaa;
        await node.WriteAsync(0, bootSector);
        await node.WriteAsync(512, Qcow2Header());
        await node.WriteZeroesAsync(0, 512);
        await node.FlushAsync();
        byte[] after = await File.ReadAllBytesAsync(image);
        Assert.True(after.AsSpan(0, 512).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(Qcow2Header(), after.AsSpan(512, 512).ToArray());
    }

    [Fact]
    public async Task TwoOverlappingWritesInFlightCannotEachPassTheCheckAndTogetherBuildAHeader()
    {
        // The first write is held inside the file, after its check; the second, checked against the
        // sector without the first, would pass, and together they would write the magic.
        var file = new HeldWritesNode(new MemoryNode(Size));
        await using var node = new ProbedRawNode(file);
        var first = node.WriteAsync(0, QcowMagic.AsMemory(0, 2)).AsTask();
        await file.FirstWriteArrived.WaitAsync(TimeSpan.FromSeconds(30));
        var second = node.WriteAsync(2, QcowMagic.AsMemory(2, 2)).AsTask();
        await Task.WhenAny(second, Task.Delay(200));
        file.Release();
        await first;
        var e = await Assert.ThrowsAsync<BlockException>(() => second);
        Assert.Equal(BlockError.PermissionDenied, e.Error);
        var sector = new byte[512];
        await node.ReadAsync(0, sector);
        Assert.Null(ImageSignatures.Detect(sector));
    }

    [Fact]
    public async Task AMergeReopensAProbedBaseStillGuarded()
    {
        using var dir = new TempFolder("probe");
        string image = CreateRaw(dir);
        await using var probed = await ImageOpener.OpenAsync(image, new ImageOpenOptions { ReadOnly = true });
        await using var writable = await ImageOpener.ReopenWritableAsync(probed, NodePermissions.Reader, NodePermissions.Writer, new ImageOpenOptions());
        var e = await Assert.ThrowsAsync<BlockException>(async () => await writable.WriteAsync(0, Qcow2Header()));
        Assert.Equal(BlockError.PermissionDenied, e.Error);
    }

    [Fact]
    public async Task AFileThatLooksLikeAnotherFormatIsNotTakenForRaw()
    {
        using var dir = new TempFolder("probe");
        string image = CreateRaw(dir);
        await using (var given = await ImageOpener.OpenAsync(image, new ImageOpenOptions { Format = "raw" }))
        {
            await given.WriteAsync(0, "conectix"u8.ToArray());
        }

        var e = await Assert.ThrowsAsync<BlockException>(async () => await ImageOpener.OpenAsync(image, new ImageOpenOptions()));
        Assert.Contains("vpc", e.Message, StringComparison.Ordinal);
        await using var explicitRaw = await ImageOpener.OpenAsync(image, new ImageOpenOptions { Format = "raw" });
        Assert.Equal(Size, explicitRaw.Size);
    }

    private static string CreateRaw(TempFolder dir)
    {
        string image = dir.File("disk.raw");
        using (var file = File.Create(image))
        {
            file.SetLength(Size);
        }

        return image;
    }

    /// <summary>A sector that starts like a qcow2 version 3 header.</summary>
    private static byte[] Qcow2Header()
    {
        var sector = new byte[512];
        QcowMagic.CopyTo(sector, 0);
        sector[7] = 3;
        return sector;
    }

    /// <summary>Holds the first write that reaches it until released.</summary>
    private sealed class HeldWritesNode(IBlockNode inner) : DelegatingNode(inner)
    {
        private readonly TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _writes;

        public Task FirstWriteArrived => _arrived.Task;

        public void Release() => _release.TrySetResult();

        public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Increment(ref _writes) == 1)
            {
                _arrived.TrySetResult();
                await _release.Task;
            }

            await Inner.WriteAsync(offset, data, flags, cancellationToken);
        }
    }
}
