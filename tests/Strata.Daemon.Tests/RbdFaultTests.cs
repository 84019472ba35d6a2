using System.Net;
using System.Net.Sockets;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Daemon.Tests;

/// <summary>
/// Faults of the Ceph cluster under an RBD drive (issue 15, "Faults"): the OSD stopped and started
/// again during a write load through `strata serve`, and cluster settings that cannot work. librbd
/// holds a request while the OSD is away (up to "rados osd op timeout", 0 on the test cluster: for
/// ever), so the guest's requests wait. With a short op timeout in the locator they fail instead, and
/// the drive's error policy decides: werror/rerror=report fails them as NBD errors (never a dropped
/// connection), which the workload (RbdFaultLoad) retries as a guest would; stop holds them, the
/// daemon says io-error, and cont runs them again once the OSD is back. No acknowledged write may be
/// lost, and the daemon stays up.
/// </summary>
public sealed class RbdFaultTests(ITestOutputHelper output)
{
    private const long DiskSize = 16 << 20;
    private const int Writers = 4;
    private const int WarmUpRequests = 200;
    private static readonly TimeSpan LoadBound = TimeSpan.FromMinutes(3);

    /// <summary>librbd's op timeout in the giving-up tests (rados_osd_op_timeout, seconds).</summary>
    private const int OpTimeoutSeconds = 2;

    [Fact]
    public async Task AWriteLoadThroughServeLosesNoAcknowledgedWriteWhenTheOsdStopsAndStartsAgain()
    {
        int seed = Workload.NewSeed();
        using var ceph = await PrivateCephCluster.StartAsync();
        var cluster = ceph.Cluster;
        string image = CephCluster.UniqueName("fault");
        cluster.Rbd("create", "--size", $"{DiskSize >> 20}M", $"{cluster.Pool}/{image}");
        using var folder = new TempFolder("rbdfault");
        var model = new DiskModel(DiskSize);
        var load = new RbdFaultLoad(model, seed, Writers);
        await using var daemon = await DaemonProcess.StartAsync(folder.Path, cluster.RbdLocator(image), "raw");

        await load.StartAsync(daemon);
        await load.WaitForProgressAsync(WarmUpRequests, LoadBound);
        await ceph.StopOsdAsync();
        load.BeginOutage();
        int atStop = load.Completed;
        await Task.Delay(TimeSpan.FromSeconds(3));
        int whileDown = load.Completed - atStop;
        load.EndOutage();
        await ceph.StartOsdAsync();
        await load.WaitForProgressAsync(load.Completed + WarmUpRequests, LoadBound);
        await load.StopAsync(LoadBound);
        string story = $"seed {seed}; {whileDown} requests acknowledged while the OSD was down; {load.Failures.Count} attempts failed: "
            + string.Join("; ", load.Failures.Take(5));
        output.WriteLine(story);

        Assert.True(load.BrokenFlushes.Count == 0,
            $"flushes were acknowledged while the OSD was down, after writes that cannot have reached it: {string.Join("; ", load.BrokenFlushes)} ({story})");
        Assert.All(load.Failures, failure => Assert.IsType<NbdException>(failure.Error));

        // Read back through a fresh connection: the daemon still serves, and serves what was acknowledged.
        await VerifyAndQuitAsync(daemon, cluster, image, model, folder, story);
    }

    [Fact]
    public async Task UnderReportRequestsFailWhileTheOsdIsDownAndARetryingGuestLosesNoAcknowledgedWrite()
    {
        int seed = Workload.NewSeed();
        using var ceph = await PrivateCephCluster.StartAsync();
        var cluster = ceph.Cluster;
        string image = CephCluster.UniqueName("faultreport");
        cluster.Rbd("create", "--size", $"{DiskSize >> 20}M", $"{cluster.Pool}/{image}");
        using var folder = new TempFolder("rbdfault");
        var model = new DiskModel(DiskSize);
        var load = new RbdFaultLoad(model, seed, Writers);
        await using var daemon = await DaemonProcess.StartDriveAsync(folder.Path, GivingUpDrive(cluster, image, "report"));

        await load.StartAsync(daemon);
        await load.WaitForProgressAsync(WarmUpRequests, LoadBound);
        await ceph.StopOsdAsync();
        load.BeginOutage();
        // librbd gives up after the op timeout: the guest must see it, or this test proves nothing.
        await load.WaitForFailureAsync(LoadBound);
        load.EndOutage();
        await ceph.StartOsdAsync();
        await load.WaitForProgressAsync(load.Completed + WarmUpRequests, LoadBound);
        await load.StopAsync(LoadBound);
        string story = Story(seed, load);
        output.WriteLine(story);

        Assert.NotEmpty(load.Failures);
        Assert.All(load.Failures, failure => Assert.IsType<NbdException>(failure.Error));
        Assert.True(load.BrokenFlushes.Count == 0, $"flushes were acknowledged while the OSD was down: {string.Join("; ", load.BrokenFlushes)} ({story})");
        await VerifyAndQuitAsync(daemon, cluster, image, model, folder, story);
    }

    [Fact]
    public async Task UnderStopTheGuestSeesNoErrorTheDaemonSaysIoErrorAndContAfterTheOsdIsBackLosesNoAcknowledgedWrite()
    {
        int seed = Workload.NewSeed();
        using var ceph = await PrivateCephCluster.StartAsync();
        var cluster = ceph.Cluster;
        string image = CephCluster.UniqueName("faultstop");
        cluster.Rbd("create", "--size", $"{DiskSize >> 20}M", $"{cluster.Pool}/{image}");
        using var folder = new TempFolder("rbdfault");
        var model = new DiskModel(DiskSize);
        var load = new RbdFaultLoad(model, seed, Writers);
        await using var daemon = await DaemonProcess.StartDriveAsync(folder.Path, GivingUpDrive(cluster, image, "stop"));
        await using var qmp = await daemon.ConnectQmpAsync();

        await load.StartAsync(daemon);
        await load.WaitForProgressAsync(WarmUpRequests, LoadBound);
        await ceph.StopOsdAsync();
        load.BeginOutage();
        var error = (await qmp.WaitForEventAsync("BLOCK_IO_ERROR", LoadBound))["data"]!;
        await qmp.WaitForEventAsync("STOP", LoadBound);
        string statusWhileDown = await StatusAsync(qmp);
        var ioStatusWhileDown = (string?)(await qmp.ExecuteAsync("query-block"))!.AsArray()[0]!["io-status"];
        load.EndOutage();
        await ceph.StartOsdAsync();
        int conts = await ContUntilProgressAsync(qmp, load, load.Completed + WarmUpRequests);
        await load.StopAsync(LoadBound);
        string story = Story(seed, load) + $"; first error {error.ToJsonString()}; cont sent {conts} times";
        output.WriteLine(story);

        Assert.Equal("stop", (string?)error["action"]);
        Assert.Equal("io-error", statusWhileDown);
        Assert.Equal("failed", ioStatusWhileDown);
        Assert.True(load.Failures.Count == 0, $"the guest saw errors under werror=stop ({story})");
        Assert.True(load.BrokenFlushes.Count == 0, $"flushes were acknowledged while the OSD was down: {string.Join("; ", load.BrokenFlushes)} ({story})");
        Assert.Equal("running", await StatusAsync(qmp));
        await VerifyAndQuitAsync(daemon, cluster, image, model, folder, story);
    }

    [Fact]
    public async Task AnUnreachableMonitorGivesImgInfoOneClearLineWithinTheMountTimeout()
    {
        using var folder = new TempFolder("rbdmon");
        string conf = UnreachableMonitorConf(folder);

        var result = await Processes.StrataAsync(["img", "info", $"rbd:rbd/nothing:conf={conf}"], new ProcessOptions { Timeout = TimeSpan.FromMinutes(1) });

        AssertOneClearLine(result.ExitCode, result.Stderr, result.ToString());
        Assert.Contains("timed out", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeWithAnUnreachableMonitorExitsWithOneClearLineWithinTheMountTimeout()
    {
        using var folder = new TempFolder("rbdmon");
        string conf = UnreachableMonitorConf(folder);

        await using var daemon = ServeProcess.Start(folder.Path, null, "--drive", $"id=d0,file=rbd:rbd/nothing:conf={conf},format=raw",
            "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{folder.File("qmp.sock")}");
        int exit = await daemon.WaitForExitAsync(TimeSpan.FromMinutes(1));

        AssertOneClearLine(exit, daemon.Stderr, daemon.ToString());
        Assert.Contains("timed out", daemon.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(folder.File("nbd.sock")), $"the daemon served before its drive opened\n{daemon}");
    }

    [Theory]
    [InlineData("a missing ceph.conf")]
    [InlineData("a pool the cluster lacks")]
    [InlineData("an image the pool lacks")]
    public async Task WrongClusterSettingsGiveImgInfoOneClearLine(string wrong)
    {
        var cluster = CephCluster.Shared;
        string locator = wrong switch
        {
            "a missing ceph.conf" => $"rbd:{cluster.Pool}/nothing:conf={cluster.Conf}.missing",
            "a pool the cluster lacks" => $"rbd:{CephCluster.UniqueName("nopool")}/nothing:conf={cluster.Conf}",
            _ => cluster.RbdLocator(CephCluster.UniqueName("noimage")),
        };

        var result = await Processes.StrataAsync(["img", "info", locator], new ProcessOptions { Timeout = TimeSpan.FromMinutes(1) });

        AssertOneClearLine(result.ExitCode, result.Stderr, $"{wrong}:\n{result}");
    }

    [Fact]
    public async Task AWriteBackThatFailsWhileTheOsdIsDownFailsEveryLaterFlushEvenOnceTheOsdIsBack()
    {
        // librbd's write-around cache acknowledges a write when it is sent and reports a failed
        // write-back once, at the next flush, keeping nothing to retry: a second flush would succeed
        // without the write. The drive must not say so (FlushFailureLatch, as QEMU's file-posix).
        using var ceph = await PrivateCephCluster.StartAsync();
        var cluster = ceph.Cluster;
        string image = CephCluster.UniqueName("faultflush");
        cluster.Rbd("create", "--size", $"{DiskSize >> 20}M", $"{cluster.Pool}/{image}");
        using var folder = new TempFolder("rbdfault");
        await using var daemon = await DaemonProcess.StartDriveAsync(folder.Path,
            $"file={cluster.RbdLocator(image)}:rados_osd_op_timeout={OpTimeoutSeconds},format=raw,cache=writeback,werror=report,rerror=report");
        await using var nbd = await daemon.ConnectNbdAsync();
        var block = new byte[4096];
        Array.Fill(block, (byte)0x5a);
        await nbd.WriteAsync(0, block);

        // The first flush ends librbd's write-through start: from now on writes are acknowledged when sent.
        await nbd.FlushAsync();
        await ceph.StopOsdAsync();
        await nbd.WriteAsync(1 << 20, block).WaitAsync(TimeSpan.FromSeconds(OpTimeoutSeconds * 5));
        var first = await Assert.ThrowsAsync<NbdException>(() => nbd.FlushAsync().WaitAsync(LoadBound));
        await ceph.StartOsdAsync();
        await nbd.WriteAsync(2 << 20, block);
        var second = await Assert.ThrowsAsync<NbdException>(() => nbd.FlushAsync().WaitAsync(LoadBound));
        output.WriteLine($"first flush: {first.Message}; second flush, with the OSD back: {second.Message}");

        // The daemon's own last flush fails the same way, and its stop says so instead of exiting 0.
        Assert.NotEqual(0, await daemon.QuitAsync());
    }

    /// <summary>
    /// The drive of the giving-up tests: librbd abandons a request after <see cref="OpTimeoutSeconds"/>
    /// (instead of the cluster's 0, wait forever) so requests fail while the OSD is down, and the
    /// werror/rerror <paramref name="policy"/> decides what the guest sees. Without librbd's cache, so
    /// every write the guest has acknowledged reached the OSD (or failed to the guest).
    /// </summary>
    private static string GivingUpDrive(CephCluster cluster, string image, string policy) =>
        $"file={cluster.RbdLocator(image)}:rados_osd_op_timeout={OpTimeoutSeconds},format=raw,cache=none,werror={policy},rerror={policy}";

    private static string Story(int seed, RbdFaultLoad load) =>
        $"seed {seed}; {load.Completed} requests acknowledged; {load.Failures.Count} attempts failed: " + string.Join("; ", load.Failures.Take(5));

    private static async Task<string> StatusAsync(QmpClient qmp) => (string)(await qmp.ExecuteAsync("query-status"))!["status"]!;

    /// <summary>
    /// Sends cont until the load reaches <paramref name="target"/>: a request that fails again while
    /// the cluster settles stops the daemon again, and is held again (a bounded number of rounds).
    /// </summary>
    private static async Task<int> ContUntilProgressAsync(QmpClient qmp, RbdFaultLoad load, int target)
    {
        const int Rounds = 10;
        var deadline = DateTime.UtcNow + LoadBound;
        int conts = 0;
        while (load.Completed < target)
        {
            if (await StatusAsync(qmp) == "io-error")
            {
                Assert.True(++conts <= Rounds, $"the daemon stopped again after {Rounds} conts");
                await qmp.ExecuteAsync("cont");
            }

            Assert.True(DateTime.UtcNow < deadline, $"the load acknowledged {load.Completed} requests, not {target}, within {LoadBound.TotalSeconds:0} s");
            await Task.Delay(100);
        }

        return conts;
    }

    /// <summary>Reads the disk back through a fresh connection, quits the daemon, and compares `rbd export` with the model.</summary>
    private static async Task VerifyAndQuitAsync(DaemonProcess daemon, CephCluster cluster, string image, DiskModel model, TempFolder folder, string story)
    {
        NbdClient reader;
        try
        {
            reader = await daemon.ConnectNbdAsync();
        }
        catch (IOException error)
        {
            throw new InvalidOperationException($"the daemon no longer serves after the outage ({story}): {error.Message}\n{daemon.Output}", error);
        }

        await using (reader)
        {
            await RbdFaultLoad.VerifyAsync(model, reader, story);
        }

        Assert.Equal(0, await daemon.QuitAsync());

        // And the cluster holds it: the daemon's cache (if any) reached the OSD before it quit.
        string exported = folder.File("export.raw");
        cluster.Rbd("export", "--no-progress", $"{cluster.Pool}/{image}", exported);
        long bad = model.FirstMismatch(0, await File.ReadAllBytesAsync(exported));
        Assert.True(bad < 0, $"rbd export differs from the acknowledged writes at byte {bad} ({story})");
    }

    /// <summary>
    /// A ceph.conf whose monitor is a loopback port nobody listens on, with a 5 s mount timeout. It
    /// ends in a newline: librados refuses a file whose last line has none (EINVAL).
    /// </summary>
    private static string UnreachableMonitorConf(TempFolder folder)
    {
        int port;
        using (var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        }

        string conf = folder.File("ceph.conf");
        File.WriteAllText(conf, $"""
            [global]
            mon host = v2:127.0.0.1:{port}
            auth cluster required = none
            auth service required = none
            auth client required = none
            client mount timeout = 5

            """);
        return conf;
    }

    private void AssertOneClearLine(int exitCode, string stderr, string story)
    {
        output.WriteLine(stderr);
        Assert.True(exitCode != 0, $"expected a failure:\n{story}");
        string[] lines = stderr.Trim().Split('\n');
        Assert.True(lines.Length == 1 && lines[0].Length > 0, $"expected one line on stderr:\n{story}");
        Assert.DoesNotContain("Exception", lines[0], StringComparison.Ordinal);
        Assert.Contains("rbd", lines[0], StringComparison.OrdinalIgnoreCase);
    }
}
