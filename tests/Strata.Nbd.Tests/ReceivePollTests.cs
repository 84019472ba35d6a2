using System.Diagnostics;
using System.Net.Sockets;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// The adaptive poll window of a connection's receive (QEMU's poll-max-ns rules): it grows only while
/// the client keeps answering within the maximum, drops to zero after one longer wait, and finds bytes
/// that are waiting without blocking.
/// </summary>
public sealed class ReceivePollTests
{
    private static readonly TimeSpan Max = TimeSpan.FromMicroseconds(64);
    private static readonly long MaxTicks = (long)(Max.TotalSeconds * Stopwatch.Frequency);

    [Fact]
    public void TheWindowStartsClosedAndGrowsByDoublingUpToTheMaximumWhileWaitsAreShort()
    {
        var poll = new ReceivePoll(Max);
        Assert.Equal(0, poll.Window);
        var windows = new List<long>();
        for (int i = 0; i < 10; i++)
        {
            poll.Waited(MaxTicks / 10);
            windows.Add(poll.Window);
        }

        Assert.True(windows[0] > 0 && windows[0] < MaxTicks, $"first window {windows[0]} ticks");
        for (int i = 1; i < windows.Count; i++)
        {
            Assert.Equal(Math.Min(MaxTicks, windows[i - 1] * 2), windows[i]);
        }

        Assert.Equal(MaxTicks, windows[^1]);
    }

    [Fact]
    public void OneWaitLongerThanTheMaximumClosesTheWindow()
    {
        var poll = new ReceivePoll(Max);
        for (int i = 0; i < 10; i++)
        {
            poll.Waited(1);
        }

        Assert.Equal(MaxTicks, poll.Window);
        poll.Waited(MaxTicks + 1);
        Assert.Equal(0, poll.Window);
    }

    [Fact]
    public void AZeroMaximumNeverPolls()
    {
        var poll = new ReceivePoll(TimeSpan.Zero);
        Assert.False(poll.Enabled);
        poll.Waited(1);
        Assert.Equal(0, poll.Window);
    }

    [Fact]
    public void PollingNeedsASecondCpu()
    {
        Assert.Equal(Environment.ProcessorCount > 1, new ReceivePoll(Max).Enabled);
    }

    [Fact]
    public void AnOpenWindowFindsWaitingBytesAndReportsAnEmptySocketWhenItEnds()
    {
        var (left, right) = Pair();
        using (left)
        using (right)
        {
            var poll = new ReceivePoll(Max);
            Assert.False(poll.Poll(left, Stopwatch.GetTimestamp()));
            for (int i = 0; i < 10; i++)
            {
                poll.Waited(1);
            }

            Assert.False(poll.Poll(left, Stopwatch.GetTimestamp()));
            right.Send([1, 2, 3]);

            // On one CPU nobody polls: the receive blocks at once (and finds the bytes there).
            Assert.Equal(poll.Enabled, poll.Poll(left, Stopwatch.GetTimestamp()));
        }
    }

    [Fact]
    public void AClosedWindowDoesNotLookAtTheSocket()
    {
        var (left, right) = Pair();
        using (left)
        using (right)
        {
            right.Send([1]);
            SpinWait.SpinUntil(() => left.Available > 0, TimeSpan.FromSeconds(5));
            Assert.False(new ReceivePoll(Max).Poll(left, Stopwatch.GetTimestamp()));
        }
    }

    [Theory]
    [InlineData(20261130)]
    [InlineData(7)]
    public async Task BytesSentInPiecesWithPausesArriveWholeThroughThePolledReceive(int seed)
    {
        // A sender that pauses between pieces makes the reader poll, block, and adapt its window;
        // the reader is asked whether it may poll, and told yes or no at random.
        var random = new Random(seed);
        var data = new byte[3 * 1024 * 1024];
        random.NextBytes(data);
        var (left, right) = Pair();
        using (left)
        using (right)
        {
            int asked = 0;
            using var reader = new SocketReader(left, Max, () => Interlocked.Increment(ref asked) % 3 != 0);
            var sender = Task.Run(() =>
            {
                var pace = new Random(seed + 1);
                for (int sent = 0; sent < data.Length;)
                {
                    int n = Math.Min(data.Length - sent, pace.Next(1, 300_000));
                    right.Send(data.AsSpan(sent, n));
                    sent += n;
                    if (pace.Next(4) == 0)
                    {
                        Thread.Sleep(pace.Next(0, 2));
                    }
                }
            });
            var header = new byte[28];
            var payload = new byte[data.Length - header.Length - 100];
            var tail = new byte[100];
            reader.ReadExactly(header);
            reader.ReadExactly(payload);
            reader.ReadExactly(tail);
            await sender.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(header.AsSpan().SequenceEqual(data.AsSpan(0, header.Length)), $"seed {seed}: the header differs");
            Assert.True(payload.AsSpan().SequenceEqual(data.AsSpan(header.Length, payload.Length)), $"seed {seed}: the payload differs");
            Assert.True(tail.AsSpan().SequenceEqual(data.AsSpan(data.Length - tail.Length)), $"seed {seed}: the tail differs");
            Assert.True(asked > 0 || !new ReceivePoll(Max).Enabled, $"seed {seed}: the reader never asked whether it may poll");
        }
    }

    [Fact]
    public async Task ServeRefusesANegativePollMaximumInOneLine()
    {
        var result = await Processes.StrataAsync("serve", "-hda", "unused.img", "--poll-max-ns", "-1");
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("strata serve: --poll-max-ns must be 0 (never poll) or a number of nanoseconds", result.Stderr.Trim());
    }

    private static (Socket Left, Socket Right) Pair()
    {
        string path = Path.Combine(Path.GetTempPath(), $"strata-poll-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var right = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        right.Connect(new UnixDomainSocketEndPoint(path));
        var left = listener.Accept();
        File.Delete(path);
        return (left, right);
    }
}
