using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// <c>serve --drive …,cache=none</c>: every image of the chain is open with O_DIRECT in the daemon
/// (its own /proc/PID/fdinfo says so), query-block says so, and a real client's unaligned requests
/// still land where they belong.
/// </summary>
public sealed class ServeCommandCacheNoneTests
{
    [Theory]
    [InlineData("cache=none")]
    [InlineData("cache.direct=on")]
    public async Task EveryImageOfTheChainIsOpenWithODirectAndUnalignedRequestsWork(string cache)
    {
        using var folder = new TempFolder();
        string basePath = folder.File("base.raw");
        string overlay = folder.File("top.qcow2");
        await Processes.OkAsync("qemu-img", "create", "-q", "-f", "raw", basePath, "4M");
        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4M", basePath);
        await Processes.OkAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", overlay);
        string socket = folder.File("n.sock");
        string control = folder.File("q.sock");
        using var serve = ServeProcess.Start(folder.Path, null,
            "--drive", $"id=d,file={overlay},format=qcow2,{cache}", "--nbd", $"unix:{socket}", "--qmp", $"unix:{control}");
        await serve.WaitForFileAsync(socket);
        await serve.WaitForFileAsync(control);

        OpenFileFlags.Expect(overlay, direct: true, serve.Id);
        OpenFileFlags.Expect(basePath, direct: true, serve.Id);
        await using (var qmp = await QmpClient.ConnectAsync(control))
        {
            var block = await qmp.ExecuteAsync("query-block");
            Assert.Equal("none", block![0]!["inserted"]!["cache-mode"]!.GetValue<string>());
        }

        // Neither offsets nor lengths are sector multiples, and the second write shares sectors with the first.
        string uri = $"nbd+unix:///d?socket={socket}";
        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5a 1000 3000", "-c", "write -P 0x6b 4000 70001", uri);
        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x11 0 1000", "-c", "read -P 0x5a 1000 3000",
            "-c", "read -P 0x6b 4000 70001", "-c", "read -P 0x11 74001 100000", uri);
        await serve.SignalAsync("TERM");
        Assert.Equal(0, await serve.WaitForExitAsync());

        await Processes.OkAsync("qemu-img", "check", overlay);
        await Processes.OkAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 1000 3000", "-c", "read -P 0x6b 4000 70001",
            "-c", "read -P 0x11 74001 100000", overlay);
    }

    [Fact]
    public async Task CacheNoneOnAFileSystemWithoutODirectStopsServeWithOneLine()
    {
        // procfs refuses O_DIRECT at open, as tmpfs did before Linux 6.6.
        using var folder = new TempFolder();
        using var serve = ServeProcess.Start(folder.Path, null,
            "--drive", "id=d,file=/proc/version,format=raw,readonly=on,cache=none", "--nbd", $"unix:{folder.File("n.sock")}");
        Assert.Equal(1, await serve.WaitForExitAsync());
        Assert.Equal("strata serve: cache=none: the file system of '/proc/version' does not support O_DIRECT (use cache=writeback)",
            serve.Stderr.TrimEnd('\n'));
        Assert.False(File.Exists(folder.File("n.sock")));
    }

    [Fact]
    public async Task WithoutCacheNoneTheImageGoesThroughThePageCache()
    {
        using var folder = new TempFolder();
        string image = folder.File("a.raw");
        await Processes.OkAsync("qemu-img", "create", "-q", "-f", "raw", image, "1M");
        string socket = folder.File("n.sock");
        using var serve = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={image},format=raw", "--nbd", $"unix:{socket}");
        await serve.WaitForFileAsync(socket);
        OpenFileFlags.Expect(image, direct: false, serve.Id);
        await serve.SignalAsync("TERM");
        Assert.Equal(0, await serve.WaitForExitAsync());
    }
}
