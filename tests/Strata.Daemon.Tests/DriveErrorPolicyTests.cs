using Strata.Block;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// --drive werror=/rerror= in the daemon (docs/serve.md, "When the disk fails"), with a fault-injecting
/// node above the drive's root: report fails the guest's request with its NBD error and sends
/// BLOCK_IO_ERROR; stop holds it unanswered, sends BLOCK_IO_ERROR and STOP, says io-error in
/// query-status and query-block, and runs it again on cont. A held request whose client goes away,
/// and a quit while held, leave nothing hanging.
/// </summary>
public sealed class DriveErrorPolicyTests
{
    private static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task UnderReportAFailedWriteIsAnNbdErrorAndABlockIoErrorEventAndTheDaemonRunsOn()
    {
        await using var live = await StartAsync("report", "report");
        var node = await FaultInjectingNode.WrapRootAsync(live.Daemon.Drives[0].Gate, writesBeforeCrash: 0);
        await using var qmp = await live.ConnectQmpAsync();
        await using var nbd = await live.ConnectNbdAsync();

        var e = await Assert.ThrowsAsync<NbdException>(() => nbd.WriteAsync(0, new byte[4096]));

        Assert.Equal(NbdErrno.IoError, e.Error);
        var data = (await qmp.WaitForEventAsync("BLOCK_IO_ERROR", EventTimeout))["data"]!;
        Assert.Equal(LiveDaemon.DriveId, (string?)data["device"]);
        Assert.Equal(LiveDaemon.DriveId, (string?)data["node-name"]);
        Assert.Equal("write", (string?)data["operation"]);
        Assert.Equal("report", (string?)data["action"]);
        Assert.False((bool)data["nospace"]!);
        Assert.Contains("injected crash", (string?)data["reason"]);
        Assert.Equal("running", await StatusAsync(qmp));
        Assert.Equal("ok", await IoStatusAsync(qmp));

        node.CrashAfter(long.MaxValue);
        await nbd.WriteAsync(0, new byte[4096]);
    }

    [Fact]
    public async Task UnderStopAFailedWriteIsHeldTheDaemonSaysIoErrorAndContRunsItAgain()
    {
        await using var live = await StartAsync("stop", "report");
        var node = await FaultInjectingNode.WrapRootAsync(live.Daemon.Drives[0].Gate, writesBeforeCrash: 0);
        await using var qmp = await live.ConnectQmpAsync();
        await using var nbd = await live.ConnectNbdAsync();
        var data = Enumerable.Repeat((byte)0x5a, 4096).ToArray();

        var write = nbd.WriteAsync(8192, data);
        var error = (await qmp.WaitForEventAsync("BLOCK_IO_ERROR", EventTimeout))["data"]!;
        await qmp.WaitForEventAsync("STOP", EventTimeout);

        Assert.Equal("stop", (string?)error["action"]);
        Assert.Equal("write", (string?)error["operation"]);
        Assert.Equal("io-error", await StatusAsync(qmp));
        Assert.Equal("failed", await IoStatusAsync(qmp));
        Assert.False(write.IsCompleted, "the failed write was answered while the drive was stopped");

        node.CrashAfter(long.MaxValue);
        await qmp.ExecuteAsync("cont");
        await qmp.WaitForEventAsync("RESUME", EventTimeout);
        await write.WaitAsync(EventTimeout);

        Assert.Equal("running", await StatusAsync(qmp));
        Assert.Equal("ok", await IoStatusAsync(qmp));
        var back = new byte[4096];
        await nbd.ReadAsync(8192, back);
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task AHeldRequestThatFailsAgainAfterContStopsTheDaemonAgain()
    {
        await using var live = await StartAsync("stop", "report");
        var node = await FaultInjectingNode.WrapRootAsync(live.Daemon.Drives[0].Gate, writesBeforeCrash: 0);
        await using var qmp = await live.ConnectQmpAsync();
        await using var nbd = await live.ConnectNbdAsync();
        var flush = nbd.FlushAsync();
        await qmp.WaitForEventAsync("STOP", EventTimeout);

        await qmp.ExecuteAsync("cont");
        await qmp.WaitForEventAsync("RESUME", EventTimeout);
        await qmp.WaitForEventAsync("BLOCK_IO_ERROR", EventTimeout, e => (string?)e["data"]!["action"] == "stop");
        await qmp.WaitForEventAsync("STOP", EventTimeout);

        Assert.Equal("io-error", await StatusAsync(qmp));
        Assert.False(flush.IsCompleted);
        node.CrashAfter(long.MaxValue);
        await qmp.ExecuteAsync("cont");
        await flush.WaitAsync(EventTimeout);
    }

    [Fact]
    public async Task UnderTheDefaultWerrorAFullDiskStopsWithNospaceAndAnotherFailureIsReported()
    {
        await using var live = await LiveDaemon.StartAsync();
        var node = await FaultInjectingNode.WrapRootAsync(live.Daemon.Drives[0].Gate, writesBeforeCrash: 0);
        await using var qmp = await live.ConnectQmpAsync();
        await using var nbd = await live.ConnectNbdAsync();
        await Assert.ThrowsAsync<NbdException>(() => nbd.WriteAsync(0, new byte[512]));
        Assert.Equal("running", await StatusAsync(qmp));

        node.Error = BlockError.NoSpace;
        var write = nbd.WriteAsync(0, new byte[512]);
        var error = (await qmp.WaitForEventAsync("BLOCK_IO_ERROR", EventTimeout, e => (string?)e["data"]!["action"] == "stop"))["data"]!;

        Assert.True((bool)error["nospace"]!);
        Assert.Equal("nospace", await IoStatusAsync(qmp));
        node.CrashAfter(long.MaxValue);
        await qmp.ExecuteAsync("cont");
        await write.WaitAsync(EventTimeout);
    }

    [Fact]
    public async Task UnderRerrorStopAFailedReadIsHeldAndContRunsItAgain()
    {
        await using var live = await StartAsync("report", "stop");
        var node = await FaultInjectingNode.WrapRootAsync(live.Daemon.Drives[0].Gate);
        await using var qmp = await live.ConnectQmpAsync();
        await using var nbd = await live.ConnectNbdAsync();
        node.FailReads = true;
        node.CrashAfter(-1);

        var read = nbd.ReadAsync(0, new byte[4096]);
        var error = (await qmp.WaitForEventAsync("BLOCK_IO_ERROR", EventTimeout))["data"]!;

        Assert.Equal("read", (string?)error["operation"]);
        Assert.Equal("stop", (string?)error["action"]);
        await qmp.WaitForEventAsync("STOP", EventTimeout);
        node.CrashAfter(long.MaxValue);
        await qmp.ExecuteAsync("cont");
        await read.WaitAsync(EventTimeout);
    }

    [Fact]
    public async Task AClientThatGoesAwayWhileItsRequestIsHeldLeavesNothingInFlightAndTheDaemonStopsCleanly()
    {
        await using var live = await StartAsync("stop", "stop");
        var gate = live.Daemon.Drives[0].Gate;
        var node = await FaultInjectingNode.WrapRootAsync(gate, writesBeforeCrash: 0);
        await using var qmp = await live.ConnectQmpAsync();
        var nbd = await live.ConnectNbdAsync();
        var write = nbd.WriteAsync(0, new byte[4096]);
        await qmp.WaitForEventAsync("STOP", EventTimeout);

        // STOP is sent as the write fails, just before it starts waiting held.
        for (int i = 0; i < 10_000 && gate.HeldRequests != 1; i++)
        {
            await Task.Delay(1);
        }

        Assert.Equal(1, gate.HeldRequests);
        await nbd.DisposeAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => write.WaitAsync(EventTimeout));

        // The server learns of the disconnect on its own time: once it has, the held write is dropped,
        // and cont must not run it.
        for (int i = 0; i < 10_000 && gate.HeldRequests != 0; i++)
        {
            await Task.Delay(1);
        }

        Assert.Equal(0, gate.HeldRequests);
        Assert.Equal(0, gate.InFlight);
        long seen = node.WritesSeen;
        node.CrashAfter(long.MaxValue);
        await qmp.ExecuteAsync("cont");
        await using (var other = await live.ConnectNbdAsync())
        {
            await other.WriteAsync(4096, new byte[512]);
        }

        Assert.Equal(seen + 1, node.WritesSeen);
        await live.Daemon.StopAsync().WaitAsync(EventTimeout);
    }

    [Fact]
    public async Task QuitWhileARequestIsHeldAnswersItWithItsErrorAndStopsCleanly()
    {
        await using var live = await StartAsync("stop", "stop");
        var node = await FaultInjectingNode.WrapRootAsync(live.Daemon.Drives[0].Gate, writesBeforeCrash: 0);
        await using var qmp = await live.ConnectQmpAsync();
        await using var nbd = await live.ConnectNbdAsync();
        var write = nbd.WriteAsync(0, new byte[4096]);
        await qmp.WaitForEventAsync("STOP", EventTimeout);

        // The disk works again, so the stop's own flush succeeds; the held write is still not run again.
        node.CrashAfter(long.MaxValue);
        await qmp.ExecuteAsync("quit");
        await live.Daemon.StopRequested.WaitAsync(EventTimeout);
        var stop = live.Daemon.StopAsync();

        var e = await Assert.ThrowsAsync<NbdException>(() => write.WaitAsync(EventTimeout));
        Assert.Equal(NbdErrno.IoError, e.Error);
        await stop.WaitAsync(EventTimeout);
        Assert.Equal(1, node.WritesSeen - FlushesAtStop);
    }

    /// <summary>The flush a stop sends through the drive's root after its requests are done.</summary>
    private const int FlushesAtStop = 1;

    private static Task<LiveDaemon> StartAsync(string werror, string rerror) => LiveDaemon.StartAsync(options => options with
    {
        Drives = [.. options.Drives.Select(d => DriveSpec.Parse($"id={d.Id},file={d.File},format=raw,werror={werror},rerror={rerror}"))],
    });

    private static async Task<string> StatusAsync(QmpClient qmp)
    {
        var status = (await qmp.ExecuteAsync("query-status"))!.AsObject();
        Assert.Equal((string?)status["status"] == "running", (bool)status["running"]!);
        return (string)status["status"]!;
    }

    private static async Task<string> IoStatusAsync(QmpClient qmp) =>
        (string)(await qmp.ExecuteAsync("query-block"))!.AsArray()[0]!["io-status"]!;
}
