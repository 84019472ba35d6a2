using System.Text.Json.Nodes;
using Strata.Block;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// How the daemon stops (docs/serve.md, "Stopping"): by SIGTERM, SIGINT, SIGHUP or quit, a merge in
/// flight is cancelled, every image is flushed and closed clean, and the chain reads what the guest wrote.
/// </summary>
public sealed class StorageDaemonTests
{
    private const long DiskSize = 8 << 20;
    private const long Half = DiskSize / 2;
    private static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData("TERM", false, 701)]
    [InlineData("INT", false, 702)]
    [InlineData("HUP", false, 703)]
    [InlineData("quit", false, 704)]
    [InlineData("TERM", true, 711)]
    [InlineData("INT", true, 712)]
    [InlineData("HUP", true, 713)]
    [InlineData("quit", true, 714)]
    public async Task StoppingDuringAMergeCancelsItClosesBothImagesCleanAndTheMergeRunsAgainAfterARestart(string stop, bool ready, int seed)
    {
        using var folder = new TempFolder();
        string baseImage = folder.File("base.qcow2");
        string top = folder.File("top.qcow2");

        // Lazy refcounts: an image left open for writing keeps its dirty bit, so a clean close shows in the header.
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", baseImage, $"{DiskSize}").AssertSuccess();
        var random = new Random(seed);
        var model = new byte[DiskSize];
        (long Offset, byte[] Data)? uncertain;
        await using (var daemon = await DaemonProcess.StartAsync(folder.Path, baseImage, "qcow2"))
        {
            await using var guest = await daemon.ConnectNbdAsync();
            await using var qmp = await daemon.ConnectQmpAsync();
            await CrashTests.WriteAsync(guest, random, model, 40);
            Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", "-b", baseImage, "-F", "qcow2", top).AssertSuccess();
            await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
            {
                ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = top, ["mode"] = "existing",
            });
            await CrashTests.WriteAsync(guest, random, model, 80);
            await guest.FlushAsync();

            // Two guests write until the stop: fio (its own process) in the upper half, the model writer in the lower.
            var fio = Processes.RunAsync("fio", FioArguments(daemon.NbdSocket, seed), ProcessOptions.Default);
            await WaitForFioAsync(guest, fio);
            var writer = Task.Run(() => WriteUntilStoppedAsync(guest, new Random(seed + 1), model));

            // The merge is slowed down when it must still be copying at the stop.
            await qmp.ExecuteAsync("block-commit", new JsonObject
            {
                ["device"] = LiveDaemon.DriveId, ["job-id"] = "m", ["speed"] = ready ? 0 : 256 << 10,
            });
            if (ready)
            {
                await qmp.WaitForEventAsync("BLOCK_JOB_READY", EventTimeout);
            }
            else
            {
                await WaitForCopyAsync(qmp);
            }

            Assert.False(fio.IsCompleted, "fio ended before the stop");
            Assert.False(writer.IsCompleted, "the model writer ended before the stop");
            if (stop == "quit")
            {
                await qmp.ExecuteAsync("quit");
            }
            else
            {
                await daemon.SignalAsync(stop);
            }

            Assert.True(await daemon.WaitForExitAsync() == 0, $"the daemon did not exit 0 ({daemon.Output})");
            uncertain = await writer;
            await fio;
        }

        CheckClosedClean(baseImage);
        CheckClosedClean(top);

        // The stopped merge left the chain as it was: the top over the base reads what the guest wrote
        // (the write in flight at the stop may or may not have been served).
        string chain = folder.File("chain.raw");
        Processes.Run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", top, chain).AssertSuccess();
        var lower = (await File.ReadAllBytesAsync(chain)).AsMemory(0, (int)Half);
        var served = (byte[])model.Clone();
        if (uncertain is { } w)
        {
            w.Data.CopyTo(served, w.Offset);
        }

        Assert.True(lower.Span.SequenceEqual(model.AsSpan(0, (int)Half)) || lower.Span.SequenceEqual(served.AsSpan(0, (int)Half)),
            $"the chain does not read what the guest wrote (seed {seed})");

        // Started again on the top, the merge runs to its end and the base alone reads as the chain did.
        await using (var again = await DaemonProcess.StartAsync(folder.Path, top, "qcow2"))
        {
            await using var qmp = await again.ConnectQmpAsync();
            await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m2" });
            await qmp.WaitForEventAsync("BLOCK_JOB_READY", EventTimeout);
            await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m2" });
            var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
            Assert.Null(completed["data"]!["error"]);
            var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
            Assert.Equal(baseImage, block[0]!["inserted"]!["file"]!.GetValue<string>());
            await qmp.ExecuteAsync("quit");
            Assert.True(await again.WaitForExitAsync() == 0, $"the restarted daemon did not exit 0 ({again.Output})");
        }

        CheckClosedClean(baseImage);
        var compare = Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", chain, baseImage);
        Assert.True(compare.ExitCode == 0, $"after the second merge the base differs from the chain before it (seed {seed}): {compare}");
    }

    [Fact]
    public async Task ARequestStuckInANodeDoesNotKeepTheStopBeyondItsGracePeriod()
    {
        using var folder = new TempFolder();
        string image = folder.File("foo.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, $"{DiskSize}").AssertSuccess();
        var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec(LiveDaemon.DriveId, image, "raw")],
            NbdEndpoints = [NbdEndpoint.Unix(folder.File("nbd.sock"))],
            QmpEndpoints = [NbdEndpoint.Unix(folder.File("qmp.sock"))],
            PidFile = folder.File("serve.pid"),
        })
        {
            StopGracePeriod = TimeSpan.FromSeconds(1),
        };
        await daemon.StartAsync();

        // The drive's image behind a node whose writes never complete (as a request caught in an endless loop).
        var drive = daemon.FindDrive(LiveDaemon.DriveId)!;
        var stuck = new StuckNode(drive.Root);
        using (var drain = await drive.Gate.DrainAsync())
        {
            drive.Gate.ReplaceRoot(stuck, drain);
        }

        await using var guest = await NbdClient.ConnectAsync(NbdEndpoint.Unix(folder.File("nbd.sock")), LiveDaemon.DriveId);
        _ = guest.WriteAsync(0, new byte[4096]);
        await stuck.Entered.Task.WaitAsync(EventTimeout);
        try
        {
            var stop = daemon.StopAsync();
            Assert.True(await Task.WhenAny(stop, Task.Delay(EventTimeout)) == stop, "the stop waited for a request that never completes");

            // It says what it abandoned, flushed what it could, and removed its files.
            var e = await Assert.ThrowsAsync<IOException>(() => stop);
            Assert.Contains($"drive {LiveDaemon.DriveId}", e.Message, StringComparison.Ordinal);
            Assert.Contains("abandoned", e.Message, StringComparison.Ordinal);
            Assert.True(stuck.Flushes > 0, "the image was not flushed");
            Assert.False(File.Exists(folder.File("nbd.sock")), "the NBD socket was left behind");
            Assert.False(File.Exists(folder.File("qmp.sock")), "the control socket was left behind");
            Assert.False(File.Exists(folder.File("serve.pid")), "the pid file was left behind");
        }
        finally
        {
            // Let the request go, so that nothing of this test outlives it.
            stuck.Release();
        }
    }

    /// <summary>A node whose writes wait, ignoring cancellation, until released.</summary>
    private sealed class StuckNode(IBlockNode inner) : DelegatingNode(inner)
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _flushes;

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Flushes => Volatile.Read(ref _flushes);

        public void Release() => _released.TrySetResult();

        public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        {
            Entered.TrySetResult();
            await _released.Task;
            await Inner.WriteAsync(offset, data, flags, cancellationToken);
        }

        public override ValueTask FlushAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _flushes);
            return Inner.FlushAsync(cancellationToken);
        }
    }

    private static List<string> FioArguments(string socket, int seed) =>
    [
        "--name=guest", "--ioengine=nbd", $"--uri=nbd+unix:///{LiveDaemon.DriveId}?socket={socket}",
        "--rw=randwrite", "--bs=4k", "--iodepth=8", $"--offset={Half}", $"--size={Half}", $"--randseed={seed}",
        "--time_based", "--runtime=60", "--output-format=terse",
    ];

    /// <summary>Waits (bounded) until the upper half, zero before, shows a write: fio is writing.</summary>
    private static async Task WaitForFioAsync(NbdClient guest, Task<ProcessResult> fio)
    {
        var upper = new byte[Half];
        for (int i = 0; i < 1000; i++)
        {
            await guest.ReadAsync(Half, upper);
            if (upper.AsSpan().IndexOfAnyExcept((byte)0) >= 0)
            {
                return;
            }

            if (fio.IsCompleted)
            {
                throw new InvalidOperationException($"fio ended before it wrote: {(await fio).Stderr}");
            }

            await Task.Delay(10);
        }

        throw new TimeoutException("fio never wrote");
    }

    /// <summary>
    /// Seeded writes to the lower half, mirrored into the model, until the daemon stops answering;
    /// returns the write that was in flight then (it may or may not have been served).
    /// </summary>
    private static async Task<(long Offset, byte[] Data)?> WriteUntilStoppedAsync(NbdClient guest, Random random, byte[] model)
    {
        for (int i = 0; i < 10_000_000; i++)
        {
            int length = random.Next(1, 17) * 4096;
            long offset = random.NextInt64(0, (Half - length) / 4096 + 1) * 4096;
            var data = new byte[length];
            random.NextBytes(data);
            try
            {
                await guest.WriteAsync(offset, data);
            }
            catch (Exception e) when (e is IOException or EndOfStreamException or System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                return (offset, data);
            }

            data.CopyTo(model, offset);
        }

        return null;
    }

    /// <summary>Waits (bounded) until the merge has copied something, so that the stop finds it copying.</summary>
    private static async Task WaitForCopyAsync(QmpClient qmp)
    {
        for (int i = 0; i < 1000; i++)
        {
            var job = (await qmp.ExecuteAsync("query-block-jobs"))!.AsArray().SingleOrDefault();
            if (job is not null && job["offset"]!.GetValue<long>() > 0)
            {
                Assert.False(job["ready"]!.GetValue<bool>(), "the merge was ready already; slow it down further");
                return;
            }

            await Task.Delay(10);
        }

        throw new TimeoutException("the merge never copied anything");
    }

    /// <summary>qemu-img check finds nothing to report, and the image's dirty bit is clear (it was closed).</summary>
    private static void CheckClosedClean(string image)
    {
        var check = Processes.Run("qemu-img", "check", image);
        Assert.True(check.ExitCode == 0, check.ToString());
        ulong incompatible = Qcow2HeaderOffsets.ReadUInt64(image, Qcow2HeaderOffsets.IncompatibleFeatures);
        Assert.True((incompatible & 1) == 0, $"{Path.GetFileName(image)} was left open: its dirty bit is set");
    }
}
