using System.Globalization;
using System.Text.Json;
using Strata.Cli.Tests;
using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// The seed's workflow with the disk on RBD (DESIGN.md, "The workflow it exists for"): served over
/// NBD by <c>strata serve</c>, written by qemu-io and read by nbdcopy, snapshotted into a local and
/// an RBD overlay, merged back; a second writer refused; an RBD snapshot backed up.
/// </summary>
public sealed class RbdWorkflowTests
{
    private const int Size = 16 << 20;

    [Fact]
    public async Task AServedRbdDriveSnapshotsToLocalAndRbdOverlaysAndMergesBack()
    {
        using var folder = new TempFolder("rbd-workflow");
        using var image = new RbdImage("wf");
        using var rbdOverlay = new RbdImage("wfov");
        StrataCli.ImgOk("create", "-f", "raw", image.Locator, Size.ToString());
        string nbd = $"nbd+unix:///d0?socket={folder.File("nbd.sock")}";
        string qmp = folder.File("qmp.sock");
        await using var served = ServeProcess.Start(folder.Path, RbdImage.Cluster.Environment,
            "--drive", $"id=d0,file={image.Locator},format=raw", "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{qmp}");
        await served.WaitForFileAsync(qmp);

        Assert.Contains("export-size: 16777216", await Processes.OkAsync("nbdinfo", nbd), StringComparison.Ordinal);
        QemuIo.Ok(nbd, "raw", "write -P 0x11 0 1M");

        string localOverlay = folder.File("local.qcow2");
        Monitor(qmp, $"change -l d0 file={localOverlay}");
        QemuIo.Ok(nbd, "raw", "write -P 0x22 512k 1M");
        QemuIo.Ok(image.Locator, "raw", "read -P 0x11 0 1M");
        Monitor(qmp, $"merge_disk {localOverlay}");

        Monitor(qmp, $"change -l d0 file={rbdOverlay.Locator}");
        QemuIo.Ok(nbd, "raw", "write -P 0x33 2M 1M");
        Assert.Contains(image.Locator, Processes.Ok("qemu-img", "info", "-U", rbdOverlay.Locator), StringComparison.Ordinal);
        Monitor(qmp, $"merge_disk {rbdOverlay.Locator}");
        Assert.Contains($"d0: {image.Locator} (raw)", Monitor(qmp, "info block"), StringComparison.Ordinal);

        string copy = folder.File("copy.raw");
        await Processes.OkAsync("nbdcopy", nbd, copy);
        var expected = new byte[Size];
        expected.AsSpan(0, 512 << 10).Fill(0x11);
        expected.AsSpan(512 << 10, 1 << 20).Fill(0x22);
        expected.AsSpan(2 << 20, 1 << 20).Fill(0x33);
        Assert.True(File.ReadAllBytes(copy).AsSpan().SequenceEqual(expected), "nbdcopy read other bytes than were written");

        Monitor(qmp, "quit");
        Assert.Equal(0, await served.WaitForExitAsync());
        Assert.True(image.Export().AsSpan().SequenceEqual(expected), "the RBD image differs after the daemon stopped");
    }

    [Fact]
    public async Task ASecondDaemonOnTheSameRbdImageIsRefusedWithOneLine()
    {
        using var folder = new TempFolder("rbd-lock");
        using var image = new RbdImage("lk");
        StrataCli.ImgOk("create", "-f", "raw", image.Locator, Size.ToString());
        string qmp = folder.File("qmp.sock");
        await using var first = ServeProcess.Start(folder.Path, RbdImage.Cluster.Environment,
            "--drive", $"id=d0,file={image.Locator},format=raw", "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{qmp}");
        await first.WaitForFileAsync(qmp);

        var second = Processes.Strata(["serve", "--drive", $"id=d0,file={image.Locator},format=raw",
            "--nbd", $"unix:{folder.File("nbd2.sock")}", "--qmp", $"unix:{folder.File("qmp2.sock")}"], ProcessOptions.In(folder.Path));
        Assert.NotEqual(0, second.ExitCode);
        Assert.Contains("exclusive lock is held by", second.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", second.Stderr, StringComparison.Ordinal);

        var qemu = QemuIo.Run(image.Locator, "raw", "write -P 0x44 0 4k");
        Assert.Contains("Read-only file system", qemu.Stdout + qemu.Stderr, StringComparison.Ordinal);
        QemuIo.Ok(image.Locator, "raw", "read -P 0 0 4k");
    }

    [Fact]
    public void AnRbdSnapshotIsBackedUpAndRestoredAsItsPointInTime()
    {
        using var folder = new TempFolder("rbd-backup");
        using var image = new RbdImage("bk");
        StrataCli.ImgOk("create", "-f", "raw", image.Locator, Size.ToString());
        QemuIo.Ok(image.Locator, "raw", "write -P 0x61 1M 3M");
        RbdImage.Cluster.Rbd("snap", "create", image.Spec + "@b1");
        QemuIo.Ok(image.Locator, "raw", "write -P 0x62 0 8M");

        string set = folder.File("set");
        StrataCli.Run("backup", "create", set, "--image", image.SnapshotLocator("b1")).AssertSuccess();
        string restored = folder.File("restored.raw");
        StrataCli.Run("backup", "restore", set, restored).AssertSuccess();
        Assert.True(File.ReadAllBytes(restored).AsSpan().SequenceEqual(image.Export("b1")), "the restored point is not the snapshot");
    }

    [Fact]
    public async Task ALocalBitmapFileTracksWritesToAnRbdDrive()
    {
        using var folder = new TempFolder("rbd-bitmap");
        using var image = new RbdImage("bm");
        StrataCli.ImgOk("create", "-f", "raw", image.Locator, Size.ToString());
        string qmp = folder.File("qmp.sock");
        string nbd = $"nbd+unix:///d0?socket={folder.File("nbd.sock")}";
        await using var served = ServeProcess.Start(folder.Path, RbdImage.Cluster.Environment,
            "--drive", $"id=d0,file={image.Locator},format=raw", "--bitmap", $"drive=d0,file={folder.File("t0.dbmp")}",
            "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{qmp}");
        await served.WaitForFileAsync(qmp);

        QemuIo.Ok(nbd, "raw", "write -P 0x11 1M 64k");
        string map = await Processes.OkAsync("nbdinfo", "--map=qemu:dirty-bitmap:t0", nbd);
        Assert.Matches(@"1048576\s+65536\s+1\s+dirty", map);
        Monitor(qmp, "quit");
        Assert.Equal(0, await served.WaitForExitAsync());
    }

    [Fact]
    public async Task AQcow2DriveInRbdKeepsAPersistentBitmapInItsHeader()
    {
        using var folder = new TempFolder("rbd-qcow2-bitmap");
        using var image = new RbdImage("qbm");
        StrataCli.ImgOk("create", "-f", "qcow2", image.Locator, Size.ToString());
        string qmp = folder.File("qmp.sock");
        await using var served = ServeProcess.Start(folder.Path, RbdImage.Cluster.Environment,
            "--drive", $"id=d1,file={image.Locator},format=qcow2", "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{qmp}");
        await served.WaitForFileAsync(qmp);

        Monitor(qmp, """{"execute":"block-dirty-bitmap-add","arguments":{"node":"d1","name":"b0","persistent":true}}""");
        QemuIo.Ok($"nbd+unix:///d1?socket={folder.File("nbd.sock")}", "raw", "write -P 0x11 2M 64k");
        Monitor(qmp, "quit");
        Assert.Equal(0, await served.WaitForExitAsync());

        string info = Processes.Ok("qemu-img", "info", image.Locator);
        Assert.Contains("name: b0", info, StringComparison.Ordinal);
        Processes.Ok("qemu-img", "check", "-f", "qcow2", image.Locator);
        QemuIo.Ok(image.Locator, "qcow2", "read -P 0x11 2M 64k");
    }

    /// <summary>Runs console commands against the daemon's control socket, failing with the story unless all succeed.</summary>
    /// <summary>
    /// The seed's first workflow with the base on RBD under a real guest load: fio writes over NBD and
    /// reads every block back (verify_backlog) while the console switches the drive to a local
    /// overlay and merges it back into the RBD image; at the end the image holds what the guest sees.
    /// </summary>
    [Fact]
    public async Task ASnapshotAndMergeOfAnRbdBaseUnderFioLoseNoBlockFioVerifies()
    {
        const int seed = 1501;
        const int disk = 64 << 20;
        using var folder = new TempFolder("rbd-fio");
        using var image = new RbdImage("fio");
        StrataCli.ImgOk("create", "-f", "raw", image.Locator, disk.ToString(CultureInfo.InvariantCulture));
        string socket = folder.File("nbd.sock");
        string nbd = $"nbd+unix:///d0?socket={socket}";
        string qmp = folder.File("qmp.sock");
        await using var served = ServeProcess.Start(folder.Path, RbdImage.Cluster.Environment,
            "--drive", $"id=d0,file={image.Locator},format=raw", "--nbd", $"unix:{socket}", "--qmp", $"unix:{qmp}");
        await served.WaitForFileAsync(qmp);

        var fio = Processes.RunAsync("fio", [
            "--name=guest", "--ioengine=nbd", $"--uri={nbd}", "--rw=randwrite", "--bs=4k", "--iodepth=16",
            "--verify=crc32c", "--verify_backlog=256", "--verify_fatal=1", $"--randseed={seed}",
            "--time_based", "--runtime=12", "--output-format=json",
        ], new ProcessOptions { Timeout = TimeSpan.FromMinutes(2) });
        await Task.Delay(1500);
        string overlay = folder.File("tmp_write.img");
        Monitor(qmp, $"change -l d0 file={overlay}");
        await Task.Delay(1500);
        Monitor(qmp, $"merge_disk {overlay}");
        Assert.False(fio.IsCompleted, "fio ended before the merge did, so the merge was not made under its load");
        Assert.Contains($"d0: {image.Locator} (raw)", Monitor(qmp, "info block"), StringComparison.Ordinal);

        var result = await fio;
        Assert.True(result.ExitCode == 0, $"fio found data it wrote changed or lost (seed {seed}):\n{result}");
        using (var json = JsonDocument.Parse(result.Stdout[result.Stdout.IndexOf('{', StringComparison.Ordinal)..]))
        {
            var job = json.RootElement.GetProperty("jobs")[0];
            Assert.Equal(0, job.GetProperty("error").GetInt32());
            Assert.True(job.GetProperty("read").GetProperty("io_bytes").GetInt64() > 0, "fio verified nothing");
        }

        string copy = folder.File("copy.raw");
        await Processes.OkAsync("nbdcopy", nbd, copy);
        Monitor(qmp, "quit");
        Assert.Equal(0, await served.WaitForExitAsync());
        Assert.True(image.Export().AsSpan().SequenceEqual(File.ReadAllBytes(copy)), "the RBD image differs from what the guest read before the daemon stopped");
    }

    private static string Monitor(string qmp, params string[] commands) =>
        Processes.Strata(["monitor", qmp], new ProcessOptions { Stdin = string.Join('\n', commands) + "\n" }).AssertSuccess().Stdout;
}
