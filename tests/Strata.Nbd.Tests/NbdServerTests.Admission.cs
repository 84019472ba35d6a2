using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>Who gets in when the server is full (docs/nbd.md, "Connections").</summary>
public sealed partial class NbdServerTests
{
    [Fact]
    public async Task ARealClientGetsInPastAFullHouseOfIdleConnectionsAndBusyOnesStay()
    {
        const int seed = 31;
        const int size = 64 * 1024 * 1024;
        const int stalledRead = 32 * 1024 * 1024;
        byte[] image = Pattern(size, seed);
        await using var disk = await ServedDisk.StartAsync(size, prepare: path => File.WriteAllBytes(path, image));
        int limit = new NbdServerOptions().MaxConnections;
        var connections = new List<RawConnection>();
        using var stop = new CancellationTokenSource();
        try
        {
            // In use: one connection has a large read in flight whose reply it does not read yet,
            // another sends a small read every 50 ms.
            var stalled = await OpenAsync(disk, connections);
            await stalled.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 1, 0, stalledRead);
            var busy = await OpenAsync(disk, connections);
            var busyLoop = Task.Run(async () =>
            {
                int rounds = 0;
                for (; !stop.IsCancellationRequested && rounds < 100_000; rounds++)
                {
                    ulong offset = (ulong)rounds * 4096 % size;
                    await busy.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, (ulong)rounds + 100, offset, 4096);
                    var back = await busy.ReadStructuredReadReplyAsync((ulong)rounds + 100, offset, 4096);
                    Assert.True(back.AsSpan().SequenceEqual(image.AsSpan((int)offset, 4096)), $"seed {seed}: the busy connection read wrong data");
                    await Task.Delay(50);
                }

                return rounds;
            });

            // The rest of the house: handshake done, then nothing.
            while (connections.Count < limit)
            {
                await OpenAsync(disk, connections);
            }

            var info = await Processes.RunAsync("nbdinfo", [disk.Uri()], new ProcessOptions { Timeout = TimeSpan.FromSeconds(60) });
            Assert.True(info.ExitCode == 0, $"nbdinfo did not get in past {limit} connections: {info}");
            var io = await Processes.RunAsync("qemu-io", ["-f", "raw", "-r", "-c", "read 0 64k", disk.Uri()], new ProcessOptions { Timeout = TimeSpan.FromSeconds(60) });
            Assert.True(io.ExitCode == 0, $"qemu-io did not get in past {limit} connections: {io}");

            await stop.CancelAsync();
            Assert.True(await busyLoop > 0, "the busy connection never completed a request");
            var data = await stalled.ReadStructuredReadReplyAsync(1, 0, stalledRead);
            Assert.True(data.AsSpan().SequenceEqual(image.AsSpan(0, stalledRead)), $"seed {seed}: the stalled read came back wrong");
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var connection in connections)
            {
                connection.Dispose();
            }
        }
    }

    [Fact]
    public async Task AConnectionNeverUsedMakesWayBeforeOneThatWasAndTheOtherStays()
    {
        await using var disk = await ServedDisk.StartAsync(Size, new NbdServerOptions { MaxConnections = 2, EvictIdleAfter = TimeSpan.FromSeconds(1) });
        var connections = new List<RawConnection>();
        try
        {
            // `used` is quiet for longer than `unused`, which never sent a request: `unused` goes.
            var used = await OpenAsync(disk, connections);
            await used.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 1, 0, 4096);
            await used.ReadStructuredReadReplyAsync(1, 0, 4096);
            var unused = await OpenAsync(disk, connections);

            var info = await Processes.RunAsync("nbdinfo", [disk.Uri()], new ProcessOptions { Timeout = TimeSpan.FromSeconds(60) });
            Assert.True(info.ExitCode == 0, $"nbdinfo did not get in: {info}");
            Assert.True(await unused.IsClosedByServerAsync(), "the connection never used was not the one closed");
            await used.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 2, 4096, 4096);
            await used.ReadStructuredReadReplyAsync(2, 4096, 4096);
        }
        finally
        {
            foreach (var connection in connections)
            {
                connection.Dispose();
            }
        }
    }

    [Fact]
    public async Task ServeRefusesANonPositiveEvictionDelayInOneLine()
    {
        var result = await Processes.StrataAsync("serve", "-hda", "unused.img", "--evict-idle-after", "0");
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("strata serve: --max-connections, --handshake-timeout and --evict-idle-after must be positive", result.Stderr.Trim());
    }

    private static async Task<RawConnection> OpenAsync(ServedDisk disk, List<RawConnection> connections)
    {
        var connection = await RawConnection.ConnectAsync(disk.SocketPath);
        connections.Add(connection);
        await connection.GoAsync("disk");
        return connection;
    }
}
