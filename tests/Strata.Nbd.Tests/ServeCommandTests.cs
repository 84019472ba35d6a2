using System.Text.Json;
using Strata.Daemon;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>`strata serve` end to end: defaults, signals, the control socket, -S.</summary>
public sealed class ServeCommandTests
{
    private const long Size = 4 * 1024 * 1024;

    [Fact]
    public async Task HdaServesUnderTheRuntimeFolderAndSigtermCleansUp()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string runtime = folder.File("run");
        string pidFile = folder.File("serve.pid");
        using var serve = ServeProcess.Start(folder.Path, new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = runtime }, "-hda", image, "--pidfile", pidFile);
        string socket = Path.Combine(runtime, "strata", "nbd.sock");
        await serve.WaitForFileAsync(pidFile);
        Assert.Equal($"{serve.Id}", (await File.ReadAllTextAsync(pidFile)).Trim());
        await serve.WaitForOutputAsync(socket);

        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x77 64k 64k", $"nbd+unix:///ide0-hd0?socket={socket}");
        Assert.Equal($"{Size}", (await Processes.OkAsync("nbdinfo", "--size", $"nbd+unix:///?socket={socket}")).Trim());

        // A client still connected when the signal comes: its requests finish, then it is closed.
        await using var client = await NbdClient.ConnectAsync(NbdEndpoint.Unix(socket), "ide0-hd0");
        await client.WriteAsync(0, NbdServerTests.Pattern(4096, 3));
        await serve.SignalAsync("TERM");
        Assert.Equal(0, await serve.WaitForExitAsync());
        Assert.False(File.Exists(socket), "the NBD socket was left behind");
        Assert.False(File.Exists(Path.Combine(runtime, "strata", "qmp.sock")), "the control socket was left behind");
        Assert.False(File.Exists(pidFile), "the pid file was left behind");
        var data = await File.ReadAllBytesAsync(image);
        Assert.Equal(NbdServerTests.Pattern(4096, 3), data.AsSpan(0, 4096).ToArray());
        Assert.True(data.AsSpan(65536, 65536).IndexOfAnyExcept((byte)0x77) < 0);
    }

    [Fact]
    public async Task SigintAlsoStopsCleanly()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string socket = folder.File("n.sock");
        using var serve = ServeProcess.Start(folder.Path, null, OneDrive(folder, image));
        await serve.WaitForFileAsync(socket);
        await serve.SignalAsync("INT");
        Assert.Equal(0, await serve.WaitForExitAsync());
        Assert.False(File.Exists(socket));
    }

    [Fact]
    public async Task SigintStopsADaemonStartedWithSigintIgnored()
    {
        // A script's `strata serve … &` starts it so; qemu-storage-daemon still stops on SIGINT then.
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string socket = folder.File("n.sock");
        using var serve = ServeProcess.StartWithSigintIgnored(folder.Path, OneDrive(folder, image));
        await serve.WaitForFileAsync(socket);
        string ignored = (await File.ReadAllLinesAsync($"/proc/{serve.Id}/status")).Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        Assert.Equal(0UL, Convert.ToUInt64(ignored["SigIgn:".Length..].Trim(), 16) & 2);
        await serve.SignalAsync("INT");
        Assert.Equal(0, await serve.WaitForExitAsync());
        Assert.False(File.Exists(socket));
    }

    [Fact]
    public async Task SighupStopsCleanlyAsSigtermDoesAndRemovesSocketsAndPidFile()
    {
        // QEMU handles SIGHUP as it handles SIGTERM (os-posix.c, os_setup_signal_handling).
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string pidFile = folder.File("serve.pid");
        using var serve = ServeProcess.Start(folder.Path, null, [.. OneDrive(folder, image), "--pidfile", pidFile]);
        await serve.WaitForFileAsync(pidFile);
        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 64k", $"nbd+unix:///d?socket={folder.File("n.sock")}");
        await serve.SignalAsync("HUP");
        Assert.Equal(0, await serve.WaitForExitAsync());
        Assert.False(File.Exists(folder.File("n.sock")), "the NBD socket was left behind");
        Assert.False(File.Exists(folder.File("q.sock")), "the control socket was left behind");
        Assert.False(File.Exists(pidFile), "the pid file was left behind");
        Assert.True((await File.ReadAllBytesAsync(image)).AsSpan(0, 65536).IndexOfAnyExcept((byte)0x5a) < 0);
    }

    [Fact]
    public async Task TheSnapshotWarmUpRunsAtStartAndLeavesNothingBehind()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string temporary = folder.File("tmp");
        Directory.CreateDirectory(temporary);
        using var serve = ServeProcess.Start(folder.Path, new Dictionary<string, string?> { ["TMPDIR"] = temporary }, OneDrive(folder, image));
        await serve.WaitForOutputAsync("snapshot path warmed up");
        await serve.SignalAsync("TERM");
        Assert.Equal(0, await serve.WaitForExitAsync());
        Assert.Empty(Directory.EnumerateFileSystemEntries(temporary));
        Assert.Equal(Size, new FileInfo(image).Length);
        Assert.Equal(new[] { "foo.img", "tmp" }, Directory.EnumerateFileSystemEntries(folder.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task BadArgumentsGiveOneLineAndExitCodeOne()
    {
        using var folder = new TempFolder();
        using var noDrive = ServeProcess.Start(folder.Path, null);
        Assert.Equal(1, await noDrive.WaitForExitAsync());
        Assert.Contains("no drive", noDrive.Stderr);
        using var missing = ServeProcess.Start(folder.Path, null, "-hda", folder.File("nope.img"), "--nbd", $"unix:{folder.File("n.sock")}");
        Assert.Equal(1, await missing.WaitForExitAsync());
        Assert.Single(missing.Stderr.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", missing.Stderr);
    }

    [Fact]
    public async Task QmpGreetsNegotiatesListsDrivesAndQuits()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string qmp = folder.File("q.sock");
        string socket = folder.File("n.sock");
        using var serve = ServeProcess.Start(folder.Path, null, "--drive", $"id=disk0,file={image},readonly=on", "--nbd", $"unix:{socket}", "--qmp", $"unix:{qmp}");
        await serve.WaitForFileAsync(qmp);
        var (client, greeting) = await QmpWire.ConnectAsync(qmp);
        using (client)
        {
            Assert.True(greeting.GetProperty("QMP").TryGetProperty("capabilities", out _));
            var early = await client.ExchangeAsync("""{"execute": "query-block", "id": 1}""");
            Assert.Equal("CommandNotFound", early.GetProperty("error").GetProperty("class").GetString());
            var caps = await client.ExchangeAsync("""{"execute": "qmp_capabilities", "id": "a"}""");
            Assert.Equal("a", caps.GetProperty("id").GetString());
            Assert.Equal(JsonValueKind.Object, caps.GetProperty("return").ValueKind);

            var blocks = (await client.ExchangeAsync("""{"execute": "query-block"}""")).GetProperty("return");
            var drive = Assert.Single(blocks.EnumerateArray());
            Assert.Equal("disk0", drive.GetProperty("device").GetString());
            Assert.True(drive.GetProperty("inserted").GetProperty("ro").GetBoolean());
            Assert.Equal("raw", drive.GetProperty("inserted").GetProperty("drv").GetString());
            Assert.Equal(Size, drive.GetProperty("inserted").GetProperty("image").GetProperty("virtual-size").GetInt64());

            var unknown = await client.ExchangeAsync("""{"execute": "no-such-command"}""");
            Assert.Equal("CommandNotFound", unknown.GetProperty("error").GetProperty("class").GetString());
            var garbage = await client.ExchangeAsync("""{"execute": 3}""");
            Assert.Equal("GenericError", garbage.GetProperty("error").GetProperty("class").GetString());

            Assert.Equal(JsonValueKind.Object, (await client.ExchangeAsync("""{"execute": "quit"}""")).GetProperty("return").ValueKind);
        }

        Assert.Equal(0, await serve.WaitForExitAsync());
        Assert.False(File.Exists(qmp));
        Assert.False(File.Exists(socket));
    }

    [Fact]
    public async Task AControlSocketOnTcpIsRefusedWithOneLine()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        using var serve = ServeProcess.Start(folder.Path, null, "-hda", image, "--nbd", $"unix:{folder.File("n.sock")}", "--qmp", "tcp:127.0.0.1:0");
        Assert.Equal(1, await serve.WaitForExitAsync());
        string line = Assert.Single(serve.Stderr.Trim().Split('\n'));
        Assert.Contains("unix:PATH", line, StringComparison.Ordinal);
        Assert.False(File.Exists(folder.File("n.sock")));
    }

    [Fact]
    public async Task StartPausedHoldsGuestIoUntilCont()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string qmp = folder.File("q.sock");
        string socket = folder.File("n.sock");
        await using var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec("d", image)],
            NbdEndpoints = [NbdEndpoint.Unix(socket)],
            QmpEndpoints = [NbdEndpoint.Unix(qmp)],
            StartPaused = true,
        });
        await daemon.StartAsync();
        await using var nbd = await NbdClient.ConnectAsync(NbdEndpoint.Unix(socket), "d");
        var write = nbd.WriteAsync(0, NbdServerTests.Pattern(4096, 1));
        await using (var client = await QmpClient.ConnectAsync(qmp))
        {
            var status = await client.ExecuteAsync("query-status");
            Assert.False(status!["running"]!.GetValue<bool>());
            Assert.False(write.IsCompleted, "a write ran while guest I/O was held");
            await client.ExecuteAsync("cont");
        }

        await write;
        Assert.False(daemon.IsPaused);
    }

    [Fact]
    public async Task ASecondDaemonDoesNotStealALiveSocket()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string socket = folder.File("n.sock");
        var options = new DaemonOptions { Drives = [new DriveSpec("d", image)], NbdEndpoints = [NbdEndpoint.Unix(socket)] };
        await using var first = new StorageDaemon(options);
        await first.StartAsync();
        // Another image, or the first daemon's lock on this one would refuse the second first.
        string other = folder.File("other.img");
        await Processes.OkAsync("truncate", "-s", $"{Size}", other);
        await using var second = new StorageDaemon(options with { Drives = [new DriveSpec("d", other)] });
        var e = await Assert.ThrowsAsync<IOException>(() => second.StartAsync());
        Assert.Contains("in use", e.Message);
        await using var client = await NbdClient.ConnectAsync(NbdEndpoint.Unix(socket), "d");
        Assert.Equal(Size, client.Size);
    }

    [Fact]
    public async Task NbdNoneServesNothingUntilNbdServerStart()
    {
        using var folder = new TempFolder();
        string image = await ImageAsync(folder);
        string control = folder.File("q.sock"), nbd = folder.File("later.sock");
        using var serve = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={image},format=raw", "--nbd", "none", "--qmp", $"unix:{control}");
        await serve.WaitForFileAsync(control);
        Assert.DoesNotContain(Directory.GetFiles(folder.Path, "*.sock"), f => f != control);

        var (qmp, _) = await QmpWire.ConnectAsync(control);
        using (qmp)
        {
            await qmp.ExchangeAsync("""{"execute": "qmp_capabilities"}""");
            var started = await qmp.ExchangeAsync("""{"execute": "nbd-server-start", "arguments": {"addr": {"type": "unix", "path": "PATH"}}}""".Replace("PATH", nbd, StringComparison.Ordinal));
            Assert.True(started.TryGetProperty("return", out _), started.ToString());
            Assert.Contains($"\"virtual-size\": {Size}", await Processes.OkAsync("qemu-img", "info", "--output=json", $"nbd+unix:///d?socket={nbd}"));
            await qmp.ExchangeAsync("""{"execute": "quit"}""");
        }

        Assert.Equal(0, await serve.WaitForExitAsync());
    }

    /// <summary>A <see cref="Size"/>-byte raw image, foo.img, in <paramref name="folder"/>.</summary>
    private static async Task<string> ImageAsync(TempFolder folder)
    {
        string image = folder.File("foo.img");
        await Processes.OkAsync("truncate", "-s", $"{Size}", image);
        return image;
    }

    /// <summary>`serve` arguments for one drive "d" on <paramref name="image"/>, sockets n.sock and q.sock in the folder, -v.</summary>
    private static string[] OneDrive(TempFolder folder, string image) =>
        ["--drive", $"id=d,file={image}", "--nbd", $"unix:{folder.File("n.sock")}", "--qmp", $"unix:{folder.File("q.sock")}", "-v"];
}
