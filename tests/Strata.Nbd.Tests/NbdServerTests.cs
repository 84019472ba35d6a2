using Strata.Nbd.Client;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Tests;

public sealed partial class NbdServerTests
{
    private const long Size = 4 * 1024 * 1024;

    [Fact]
    public async Task GoReportsSizeFlagsAndBlockSizes()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        Assert.Equal(Size, client.Size);
        Assert.True(client.StructuredReplies);
        var flags = client.TransmissionFlags;
        Assert.True(flags.HasFlag(NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua | NbdTransmissionFlags.SendTrim
            | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.CanMultiConnection | NbdTransmissionFlags.SendDontFragment));
        Assert.False(flags.HasFlag(NbdTransmissionFlags.ReadOnly));
        Assert.Equal(1u, client.MinimumBlockSize);
        Assert.Equal(32u * 1024 * 1024, client.MaximumBlockSize);
        Assert.Equal("disk", client.ExportName);
    }

    [Fact]
    public async Task ReadOnlyExportSaysSo()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync("ro");
        Assert.True(client.IsReadOnly);
        Assert.False(client.TransmissionFlags.HasFlag(NbdTransmissionFlags.SendTrim));
    }

    [Fact]
    public async Task ListNamesEveryExport()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        var exports = await NbdClient.ListAsync(disk.Endpoint);
        Assert.Equal(["disk", "ro"], exports.Select(e => e.Name));
    }

    [Fact]
    public async Task WrittenBytesReadBackAndLandInTheFile()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var data = Pattern(100_000, 7);
        await client.WriteAsync(12345, data, NbdCommandFlags.Fua);
        var back = new byte[data.Length];
        await client.ReadAsync(12345, back);
        Assert.Equal(data, back);
        await client.FlushAsync();
        using var file = File.OpenRead(disk.ImagePath);
        file.Position = 12345;
        var onDisk = new byte[data.Length];
        file.ReadExactly(onDisk);
        Assert.Equal(data, onDisk);
    }

    [Fact]
    public async Task ReadsWithoutStructuredRepliesUseSimpleReplies()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync(options: new NbdClientOptions { StructuredReplies = false });
        Assert.False(client.StructuredReplies);
        var data = Pattern(4096, 3);
        await client.WriteAsync(8192, data);
        var back = new byte[4096];
        await client.ReadAsync(8192, back);
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task OldStyleExportNameOptionWorks()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync(options: new NbdClientOptions { UseExportName = true, MetaContexts = [] });
        Assert.Equal(Size, client.Size);
        var back = new byte[512];
        await client.ReadAsync(0, back);
        Assert.All(back, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task SparseReadOfAHoleAroundDataReturnsExactBytes()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var data = Pattern(4096, 9);
        await client.WriteAsync(1024 * 1024, data);
        var back = new byte[2 * 1024 * 1024];
        back.AsSpan().Fill(0xee);
        await client.ReadAsync(0, back);
        Assert.Equal(data, back.AsSpan(1024 * 1024, 4096).ToArray());
        Assert.True(back.AsSpan(0, 1024 * 1024).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(1024 * 1024 + 4096).IndexOfAnyExcept((byte)0) < 0);
        back.AsSpan().Fill(0xee);
        await client.ReadAsync(0, back, NbdCommandFlags.DontFragment);
        Assert.Equal(data, back.AsSpan(1024 * 1024, 4096).ToArray());
    }

    [Fact]
    public async Task StructuredReadSendsZeroRunsAsHoleChunks()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using (var client = await disk.ConnectAsync())
        {
            await client.WriteAsync(8192, Pattern(4096, 2));
        }

        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.GoAsync("disk");
        await raw.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 9, 0, 65536);
        var chunks = new List<(NbdReplyType Type, long Offset, long Length)>();
        while (true)
        {
            var (flags, type, cookie, payload) = await raw.ReadChunkAsync();
            Assert.Equal(9ul, cookie);
            long offset = System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(payload);
            long length = type == NbdReplyType.OffsetHole ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(8)) : payload.Length - 8;
            chunks.Add((type, offset, length));
            if (flags.HasFlag(NbdReplyFlags.Done))
            {
                break;
            }
        }

        Assert.Equal([(NbdReplyType.OffsetHole, 0L, 8192L), (NbdReplyType.OffsetData, 8192L, 4096L), (NbdReplyType.OffsetHole, 12288L, 53248L)], chunks);
    }

    [Fact]
    public async Task BlockStatusDescribesHolesAndDataInBothContexts()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync(options: new NbdClientOptions { MetaContexts = [NbdWire.BaseAllocation, NbdWire.QemuAllocationDepth] });
        await client.WriteAsync(65536, Pattern(65536, 1));
        var status = await client.BlockStatusAsync(0, (uint)Size);
        Assert.Equal(
            [new(65536, NbdWire.StateHole | NbdWire.StateZero), new(65536, 0), new((uint)Size - 131072, NbdWire.StateHole | NbdWire.StateZero)],
            status[NbdWire.BaseAllocation]);
        Assert.Equal([new NbdStatusExtent((uint)Size, 1)], status[NbdWire.QemuAllocationDepth]);

        var one = await client.BlockStatusAsync(0, (uint)Size, NbdCommandFlags.RequestOne);
        Assert.Equal([new NbdStatusExtent(65536, NbdWire.StateHole | NbdWire.StateZero)], one[NbdWire.BaseAllocation]);
    }

    [Fact]
    public async Task WriteZeroesTrimAndCacheSucceed()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        await client.WriteAsync(0, Pattern(262144, 5));
        await client.WriteZeroesAsync(4096, 8192, NbdCommandFlags.NoHole | NbdCommandFlags.Fua);
        await client.WriteZeroesAsync(65536, 65536);
        await client.WriteZeroesAsync(131072, 65536, NbdCommandFlags.FastZero);
        await client.TrimAsync(196608, 65536, NbdCommandFlags.Fua);
        await client.CacheAsync(0, 65536);
        var back = new byte[262144];
        await client.ReadAsync(0, back);
        Assert.True(back.AsSpan(4096, 8192).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(65536, 131072).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(Pattern(262144, 5).AsSpan(0, 4096).ToArray(), back.AsSpan(0, 4096).ToArray());
    }

    [Fact]
    public async Task ManyRequestsInFlightOnOneConnectionAllComplete()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var writes = Enumerable.Range(0, 200).Select(i => client.WriteAsync(i * 8192L, Pattern(8192, i))).ToList();
        await Task.WhenAll(writes);
        var buffers = Enumerable.Range(0, 200).Select(_ => new byte[8192]).ToArray();
        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => client.ReadAsync(i * 8192L, buffers[i])));
        for (int i = 0; i < 200; i++)
        {
            Assert.Equal(Pattern(8192, i), buffers[i]);
        }
    }

    [Fact]
    public async Task DisconnectWaitsForRequestsInFlight()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        var client = await disk.ConnectAsync();
        var writes = Enumerable.Range(0, 50).Select(i => client.WriteAsync(i * 4096L, Pattern(4096, i + 100))).ToList();
        await Task.WhenAll(writes);
        await client.DisconnectAsync();
        await client.DisposeAsync();
        var onDisk = await File.ReadAllBytesAsync(disk.ImagePath);
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(Pattern(4096, i + 100), onDisk.AsSpan(i * 4096, 4096).ToArray());
        }
    }

    [Fact]
    public async Task HeldGuestIoRunsAfterResume()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        using (await disk.Daemon.Drives[0].Gate.DrainAsync())
        {
            var write = client.WriteAsync(0, Pattern(4096, 1));
            await Task.Delay(50);
            Assert.False(write.IsCompleted, "a write went through a drained gate");
        }

        await client.FlushAsync();
    }

    internal static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}
