using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>`strata serve` holds its images the way QEMU locks them (docs/locking.md): one writer per image, QEMU's or ours.</summary>
public sealed class ServeCommandLockingTests
{
    private const string Size = "8M";

    [Fact]
    public async Task ASecondServeOfAnImageInUseExitsWithOneLineAndTheFirstKeepsItsData()
    {
        using var folder = new TempFolder("lock");
        string image = folder.File("disk.qcow2");
        await Processes.OkAsync("qemu-img", "create", "-q", "-f", "qcow2", image, Size);
        using var first = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={image}", "--nbd", $"unix:{folder.File("a.sock")}", "--qmp", $"unix:{folder.File("qa.sock")}");
        await first.WaitForFileAsync(folder.File("a.sock"));
        string uri = $"nbd+unix:///d?socket={folder.File("a.sock")}";
        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 1M", "-c", "flush", uri);

        using var second = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={image}", "--nbd", $"unix:{folder.File("b.sock")}", "--qmp", $"unix:{folder.File("qb.sock")}");
        Assert.Equal(1, await ExitOrServeAsync(second, folder.File("b.sock")));
        string error = second.Stderr.Trim();
        Assert.Single(error.Split('\n'));
        Assert.Contains($"Failed to get \"write\" lock. Is another process using the image [{image}]?", error);
        Assert.DoesNotContain("   at ", error);

        // The first daemon goes on as if nothing happened.
        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x6b 1M 1M", "-c", "read -P 0x5a 0 1M", uri);
        await first.SignalAsync("TERM");
        Assert.Equal(0, await first.WaitForExitAsync());
        Assert.Contains("No errors were found", await Processes.OkAsync("qemu-img", "check", image));
        string back = await Processes.OkAsync("qemu-io", "-f", "qcow2", "-r", "-c", "read -P 0x5a 0 1M", "-c", "read -P 0x6b 1M 1M", image);
        Assert.DoesNotContain("Pattern verification failed", back);
    }

    [Theory]
    [InlineData("raw", "Failed to get shared \"write\" lock")]
    [InlineData("qcow2", "Failed to get \"write\" lock")]
    public async Task ServeRefusesAnImageQemuStorageDaemonWrites(string format, string expected)
    {
        using var folder = new TempFolder("lock");
        string image = folder.File($"disk.{format}");
        await Processes.OkAsync("qemu-img", "create", "-q", "-f", format, image, Size);
        string qsdSocket = folder.File("q.sock");
        using var holder = await Qsd.StartAsync(qsdSocket,
            "--blockdev", $"driver=file,node-name=f0,filename={image}",
            "--blockdev", $"driver={format},node-name=d0,file=f0",
            "--nbd-server", $"addr.type=unix,addr.path={qsdSocket}",
            "--export", "type=nbd,id=e0,node-name=d0,writable=on");

        using var serve = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={image},format={format}", "--nbd", $"unix:{folder.File("s.sock")}");
        Assert.Equal(1, await ExitOrServeAsync(serve, folder.File("s.sock")));
        Assert.Contains($"{expected}. Is another process using the image [{image}]? (qemu-storage-daemon, pid ", serve.Stderr);
        Assert.Single(serve.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task ImgInfoOfAServedImageIsRefusedAsQemuImgInfoIsAndWorksWithForceShare()
    {
        using var folder = new TempFolder("lock");
        string image = folder.File("disk.qcow2");
        using var serve = await ServeNewImageAsync(folder, image, "qcow2");

        var theirs = await Processes.RunAsync("qemu-img", "info", image);
        var ours = await Processes.StrataAsync("img", "info", image);
        Assert.Contains("Failed to get shared \"write\" lock", theirs.Stderr);
        Assert.Equal(1, ours.ExitCode);
        Assert.Equal($"strata img: Could not open '{image}': Failed to get shared \"write\" lock. Is another process using the image [{image}]? (dotnet, pid {serve.Id} holds it)",
            ours.Stderr.Trim());
        Assert.Contains("virtual size: 8 MiB", (await Processes.StrataAsync("img", "info", "-U", image)).AssertSuccess().Stdout);
        Assert.Contains("virtual size: 8 MiB", (await Processes.StrataAsync("img", "info", "--force-share", image)).AssertSuccess().Stdout);
    }

    [Fact]
    public async Task QemuIoCannotWriteARawImageStrataServesAndQemuImgInfoStillReadsIt()
    {
        using var folder = new TempFolder("lock");
        string image = folder.File("disk.img");
        using var serve = await ServeNewImageAsync(folder, image, "raw");

        var write = await Processes.RunAsync("qemu-io", "-f", "raw", "-c", "write 0 4k", image);
        Assert.NotEqual(0, write.ExitCode);
        Assert.Contains("Failed to get \"write\" lock", write.Stderr);

        // As with a running VM's raw disk: info opens no data and takes no lock on a raw file.
        await Processes.OkAsync("qemu-img", "info", image);
    }

    [Fact]
    public async Task EveryLockIsGoneOnceTheDaemonStops()
    {
        using var folder = new TempFolder("lock");
        string image = folder.File("disk.qcow2");
        string overlay = folder.File("overlay.qcow2");
        await Processes.OkAsync("qemu-img", "create", "-q", "-f", "qcow2", image, Size);
        string qmpSocket = folder.File("q.sock");
        using var serve = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={image}", "--nbd", $"unix:{folder.File("s.sock")}",
            "--qmp", $"unix:{qmpSocket}");
        await serve.WaitForFileAsync(qmpSocket);
        await using (var qmp = await QmpClient.ConnectAsync(qmpSocket))
        {
            var reply = await qmp.SendAsync(new JsonObject
            {
                ["execute"] = "blockdev-snapshot-sync",
                ["arguments"] = new JsonObject { ["device"] = "d", ["snapshot-file"] = overlay },
            });
            Assert.True(reply.ContainsKey("return"), reply.ToJsonString());
        }

        foreach (string held in new[] { overlay, image })
        {
            var refused = await Processes.RunAsync("qemu-io", "-c", "write 0 4k", held);
            Assert.True(refused.ExitCode != 0 && refused.Stderr.Contains("Failed to get \"write\" lock"), $"{held} while served: {refused}");
        }

        await serve.SignalAsync("TERM");
        Assert.Equal(0, await serve.WaitForExitAsync());
        await Processes.OkAsync("qemu-io", "-c", "write -P 7 0 4k", overlay);
        await Processes.OkAsync("qemu-io", "-c", "write -P 7 0 4k", image);
    }

    /// <summary>Creates <paramref name="image"/> with qemu-img and serves it writable as drive "d" on s.sock; returns once it serves.</summary>
    private static async Task<BackgroundProcess> ServeNewImageAsync(TempFolder folder, string image, string format)
    {
        await Processes.OkAsync("qemu-img", "create", "-q", "-f", format, image, Size);
        var serve = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={image},format={format}", "--nbd", $"unix:{folder.File("s.sock")}");
        try
        {
            await serve.WaitForFileAsync(folder.File("s.sock"));
            return serve;
        }
        catch
        {
            serve.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Waits (bounded) until the daemon exits or starts serving (its socket appears): its exit code,
    /// or -1 when it went on to serve.
    /// </summary>
    private static async Task<int> ExitOrServeAsync(BackgroundProcess serve, string socket)
    {
        var exit = serve.WaitForExitAsync();
        for (int i = 0; i < 600 && !exit.IsCompleted; i++)
        {
            if (File.Exists(socket))
            {
                return -1;
            }

            await Task.Delay(50);
        }

        return await exit;
    }
}
