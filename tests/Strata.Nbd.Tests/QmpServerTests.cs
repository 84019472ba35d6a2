using System.Text;

namespace Strata.Nbd.Tests;

/// <summary>The control socket's resource bounds, against a real `strata serve` (docs/serve.md, "The control socket").</summary>
public sealed class QmpServerTests
{
    /// <summary>Control connections open at once (docs/serve.md).</summary>
    private const int ConnectionLimit = 16;

    [Fact]
    public async Task AConnectionBeyondTheLimitGetsAnErrorBeforeTheCloseAndAFreedSlotIsReused()
    {
        using var served = new ServedControlSocket();
        await served.InitializeAsync();
        var open = new List<QmpWire>();
        try
        {
            for (int i = 0; i < ConnectionLimit; i++)
            {
                var (client, greeting) = await QmpWire.ConnectAsync(served.SocketPath);
                open.Add(client);
                Assert.True(greeting.TryGetProperty("QMP", out _), $"connection {i + 1} got {greeting} instead of a greeting");
            }

            var (refused, first) = await QmpWire.ConnectAsync(served.SocketPath);
            using (refused)
            {
                var (errorClass, desc) = ServedControlSocket.Error(first);
                Assert.Equal("GenericError", errorClass);
                Assert.Contains("too many control connections", desc, StringComparison.Ordinal);
                await refused.ReadToEndAsync(TimeSpan.FromSeconds(30));
            }

            await served.Serve.WaitForOutputAsync("qmp: connection refused");
            open[0].Dispose();
            open.RemoveAt(0);
            Assert.True(await GreetedWithinAsync(served.SocketPath, attempts: 100), "a freed connection slot was never given to a new client");
        }
        finally
        {
            open.ForEach(c => c.Dispose());
        }
    }

    /// <summary>
    /// A client that negotiates and then never reads: STOP and RESUME events pile up for it until its
    /// queued output passes the bound, and then it is disconnected with a log line. The client that
    /// causes the events keeps getting every reply and every event of its own, and is answered after.
    /// </summary>
    [Fact]
    public async Task AClientThatNeverReadsIsDisconnectedWhileAnotherKeepsBeingAnswered()
    {
        using var served = new ServedControlSocket();
        await served.InitializeAsync();
        using var silent = await served.ConnectAsync();
        using var busy = await served.ConnectAsync();
        const int PairsPerBatch = 500;
        var batch = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("{\"execute\":\"stop\"}\n{\"execute\":\"cont\"}\n", PairsPerBatch)));
        int pairs = 0;
        int eventsBefore = busy.EventsSkipped;
        for (int round = 0; round < 40 && !served.Serve.Stderr.Contains("not reading", StringComparison.Ordinal); round++)
        {
            await busy.SendRawAsync(batch);
            for (int i = 0; i < 2 * PairsPerBatch; i++)
            {
                var reply = await busy.ReadReplyAsync();
                Assert.True(reply.TryGetProperty("return", out _), $"stop/cont failed: {reply}");
            }

            pairs += PairsPerBatch;
        }

        Assert.True(served.Serve.Stderr.Contains("not reading", StringComparison.Ordinal),
            $"after {2 * pairs} events the client that never reads was still not disconnected; log: {served.Serve.Stderr}");
        await silent.ReadToEndAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2 * pairs, busy.EventsSkipped - eventsBefore);
        var status = await busy.ExchangeAsync("""{"execute":"query-status","id":1}""");
        Assert.True(status.GetProperty("return").GetProperty("running").GetBoolean(), $"{status}");
    }

    private static async Task<bool> GreetedWithinAsync(string socket, int attempts)
    {
        for (int i = 0; i < attempts; i++)
        {
            var (client, first) = await QmpWire.ConnectAsync(socket);
            using (client)
            {
                if (first.TryGetProperty("QMP", out _))
                {
                    return true;
                }
            }

            await Task.Delay(50);
        }

        return false;
    }
}
