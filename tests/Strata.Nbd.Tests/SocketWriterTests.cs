using System.Net.Sockets;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// The send that never waits (<see cref="SocketWriter.TrySend"/>), for replies sent from a storage
/// library's callback thread: it returns at once whatever the peer does, and every message still
/// reaches the peer whole and in order.
/// </summary>
public sealed class SocketWriterTests
{
    [Fact]
    public async Task TrySendReturnsAtOnceWhenThePeerStopsReadingAndEveryMessageArrivesWhole()
    {
        using var pair = await Pair.OpenAsync();
        var (writer, peer) = (pair.Writer, pair.Peer);
        var accepted = new List<byte[]>();
        Task? rest = null;

        // 16 KiB messages into a socket nobody reads: the loop must meet a full socket, and never wait.
        await Task.Run(() =>
        {
            for (int i = 0; i < 4096 && rest is null; i++)
            {
                byte[] message = Message(i, 16 * 1024);
                var attempt = writer.TrySend(message);
                if (attempt.IsWhole)
                {
                    accepted.Add(message);
                    continue;
                }

                if (attempt.Sent == 0)
                {
                    break;
                }

                // Part of it left: nothing else may go out until its rest has.
                accepted.Add(message);
                var second = writer.TrySend(Message(-1, 16));
                Assert.False(second.IsWhole || second.Sent > 0, "a message was sent into the middle of another");
                var held = attempt.Held;
                int from = attempt.Sent;
                rest = Task.Run(() =>
                {
                    using (held)
                    {
                        held.Send(message.AsSpan(from));
                    }
                });
            }
        }).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(accepted.Count < 4096, "64 MiB went into a socket nobody reads: the socket never filled");
        var final = Message(9999, 100);
        var last = Task.Run(() => writer.Send(final));
        byte[] expected = [.. accepted.SelectMany(m => m), .. final];
        byte[] received = await ReceiveAsync(peer, expected.Length);
        Assert.True(received.AsSpan().SequenceEqual(expected), "the bytes the peer read are not the messages, whole and in order");
        await (rest ?? Task.CompletedTask).WaitAsync(TimeSpan.FromSeconds(30));
        await last.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task TrySendSendsNothingWhileAnotherMessageHoldsTheSendSide()
    {
        using var pair = await Pair.OpenAsync();
        var (writer, peer) = (pair.Writer, pair.Peer);
        var attempt = default(SocketWriter.SendAttempt);
        using (var lease = writer.BeginMessage())
        {
            lease.Send(Message(1, 10));
            attempt = await Task.Run(() => writer.TrySend(Message(2, 10)));
            lease.Send(Message(3, 10));
        }

        Assert.False(attempt.IsWhole || attempt.Sent > 0, "TrySend sent while another message held the send side");
        byte[] expected = [.. Message(1, 10), .. Message(3, 10)];
        Assert.Equal(expected, await ReceiveAsync(peer, 20));
    }

    [Fact]
    public async Task ACorkedTrySendIsGatheredWithTheRestAndLeavesAtUncork()
    {
        using var pair = await Pair.OpenAsync();
        var (writer, peer) = (pair.Writer, pair.Peer);
        writer.Cork();
        Assert.True(writer.TrySend(Message(1, 100)).IsWhole);
        writer.Send(Message(2, 100));
        await Task.Delay(50);
        Assert.Equal(0, peer.Available);
        writer.Uncork();
        byte[] expected = [.. Message(1, 100), .. Message(2, 100)];
        Assert.Equal(expected, await ReceiveAsync(peer, 200));
    }

    private static byte[] Message(int number, int length)
    {
        var message = new byte[length];
        new Random(number).NextBytes(message);
        return message;
    }

    /// <summary>A connected unix socket pair: a writer on one end, the peer's socket at the other.</summary>
    private sealed class Pair(TempFolder folder, Socket server, Socket peer) : IDisposable
    {
        public SocketWriter Writer { get; } = new(server);

        public Socket Peer => peer;

        public static async Task<Pair> OpenAsync()
        {
            var folder = new TempFolder();
            var endpoint = new UnixDomainSocketEndPoint(folder.File("pair.sock"));
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(endpoint);
            listener.Listen(1);
            var peer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await peer.ConnectAsync(endpoint);
            return new Pair(folder, await listener.AcceptAsync(), peer);
        }

        public void Dispose()
        {
            Writer.Dispose();
            server.Dispose();
            peer.Dispose();
            folder.Dispose();
        }
    }

    private static async Task<byte[]> ReceiveAsync(Socket socket, int length)
    {
        var buffer = new byte[length];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        for (int done = 0; done < length;)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(done), SocketFlags.None, timeout.Token);
            if (n == 0)
            {
                throw new EndOfStreamException($"closed after {done} of {length} bytes");
            }

            done += n;
        }

        return buffer;
    }
}
