using Strata.TestKit;

namespace Strata.Nbd.Tests;

public sealed class NbdConcurrencyTests
{
    [Theory]
    [InlineData(20261126)]
    [InlineData(7)]
    public async Task SeveralClientsWritingDisjointRangesAtOnceMatchTheModel(int seed)
    {
        const int clients = 4;
        const int region = 1024 * 1024;
        await using var disk = await ServedDisk.StartAsync(clients * region);
        var model = new byte[clients * region];
        var plans = new List<List<(long Offset, byte[] Data, bool Zero)>>();
        var random = new Random(seed);
        for (int c = 0; c < clients; c++)
        {
            var plan = new List<(long, byte[], bool)>();
            for (int i = 0; i < 150; i++)
            {
                int length = random.Next(1, 64) * 512;
                long offset = (c * (long)region) + random.Next(0, (region - length) / 512) * 512L;
                bool zero = random.Next(8) == 0;
                var data = new byte[length];
                if (!zero)
                {
                    random.NextBytes(data);
                }

                plan.Add((offset, data, zero));
                data.CopyTo(model, offset);
            }

            plans.Add(plan);
        }

        // Each client issues its whole plan with up to 16 requests in flight; a client's own requests
        // may overlap, so each waits for the previous request touching the same bytes (kept simple:
        // requests of one client are issued in batches of non-overlapping ones).
        await Task.WhenAll(plans.Select(async plan =>
        {
            await using var client = await disk.ConnectAsync();
            var batch = new List<Task>();
            var busy = new List<(long Start, long End)>();
            foreach (var (offset, data, zero) in plan)
            {
                if (busy.Any(b => offset < b.End && b.Start < offset + data.Length) || batch.Count == 16)
                {
                    await Task.WhenAll(batch);
                    batch.Clear();
                    busy.Clear();
                }

                busy.Add((offset, offset + data.Length));
                batch.Add(zero ? client.WriteZeroesAsync(offset, (uint)data.Length) : client.WriteAsync(offset, data));
            }

            await Task.WhenAll(batch);
            await client.FlushAsync();
        }));

        await using var reader = await disk.ConnectAsync();
        var back = new byte[model.Length];
        await reader.ReadAsync(0, back);
        int mismatch = back.AsSpan().CommonPrefixLength(model);
        Assert.True(mismatch == model.Length, $"seed {seed}: first difference at byte {mismatch}");
        var onDisk = await File.ReadAllBytesAsync(disk.ImagePath);
        Assert.True(onDisk.AsSpan().SequenceEqual(model), $"seed {seed}: the image file differs from the model");
    }

    [Fact]
    public async Task QemuIoClientsWritingDisjointRangesAtOnceAllLand()
    {
        await using var disk = await ServedDisk.StartAsync(8 * 1024 * 1024);
        var runs = Enumerable.Range(0, 4).Select(i => Processes.OkAsync("qemu-io", "-f", "raw",
            "-c", $"aio_write -P 0x{i + 1:x2} {i * 2}M 1M", "-c", $"aio_write -P 0x{i + 0x41:x2} {(i * 2) + 1}M 1M", "-c", "aio_flush",
            disk.Uri())).ToList();
        await Task.WhenAll(runs);
        var data = await File.ReadAllBytesAsync(disk.ImagePath);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(data.AsSpan(i * 2 * 1024 * 1024, 1024 * 1024).IndexOfAnyExcept((byte)(i + 1)) < 0, $"client {i} first range");
            Assert.True(data.AsSpan(((i * 2) + 1) * 1024 * 1024, 1024 * 1024).IndexOfAnyExcept((byte)(i + 0x41)) < 0, $"client {i} second range");
        }
    }
}
