using System.Net.Sockets;
using Strata.Nbd.Server;

namespace Strata.Fuzz;

/// <summary>
/// Records a seed for the nbd target: serves the target's exports to one real client (nbdinfo,
/// qemu-io, nbdsh) through a unix socket and keeps every byte the client sends. The server side is
/// the target's own connection on a socket pair, so the recording replays through the target as it
/// was lived.
/// </summary>
internal static class NbdRecorder
{
    /// <summary>How long to wait for the client to connect before giving up.</summary>
    private static readonly TimeSpan AcceptLimit = TimeSpan.FromSeconds(60);

    public static async Task<int> RecordAsync(string socketPath, string outputPath)
    {
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        File.Delete(socketPath);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        try
        {
            using var accepting = new CancellationTokenSource(AcceptLimit);
            using var peer = await listener.AcceptAsync(accepting.Token);
            var catalog = await FuzzExportCatalog.CreateAsync();
            var (server, client) = SocketPair.Create();
            using (client)
            {
                using var connection = new NbdConnection(server, catalog, NbdTarget.ServerOptions, new NbdBufferPool());
                var finished = connection.StartAsync();
                using var recording = new MemoryStream();
                var toServer = PumpAsync(peer, client, recording);
                var toPeer = PumpAsync(client, peer, null);
                await toServer;
                await toPeer;
                await finished;
                await File.WriteAllBytesAsync(outputPath, recording.ToArray());
                Console.WriteLine($"recorded {recording.Length} bytes into {outputPath}");
            }

            return 0;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync($"record-nbd: no client connected within {AcceptLimit.TotalSeconds:0} s");
            return 1;
        }
        finally
        {
            File.Delete(socketPath);
        }
    }

    /// <summary>Copies until <paramref name="from"/> ends, then half-closes <paramref name="to"/>; keeps a copy in <paramref name="tee"/>.</summary>
    private static async Task PumpAsync(Socket from, Socket to, MemoryStream? tee)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (await from.ReceiveAsync(buffer, SocketFlags.None) is var n and > 0)
            {
                tee?.Write(buffer, 0, n);
                for (int done = 0; done < n;)
                {
                    done += await to.SendAsync(buffer.AsMemory(done, n - done), SocketFlags.None);
                }
            }
        }
        catch (SocketException)
        {
            // Either side hung up: the session is over.
        }

        try
        {
            to.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // Already gone.
        }
    }
}
