using System.Text.Json;
using Strata.Daemon;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>qcow2 images with a backing file, served by strata and by qemu-storage-daemon: same bytes, same maps, a clean image after.</summary>
public sealed class NbdQcow2Tests
{
    private const long Size = 8 * 1024 * 1024;

    [Fact]
    public async Task Qcow2OverlayServesTheSameBytesAndMapsAsQemuStorageDaemon()
    {
        using var folder = new TempFolder();
        string baseImage = folder.File("base.img");
        string overlay = folder.File("overlay.qcow2");
        await Processes.OkAsync("truncate", "-s", $"{Size}", baseImage);
        await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x12 4M 512k", baseImage);
        await Processes.OkAsync("qemu-img", "create", "-f", "qcow2", "-b", baseImage, "-F", "raw", overlay, $"{Size}");
        await Processes.OkAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x21 512k 1M", "-c", "write -z 6M 64k", overlay);

        string socket = folder.File("nbd.sock");
        await using (var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec("disk", overlay, "qcow2", ReadOnly: true)],
            NbdEndpoints = [NbdEndpoint.Unix(socket)],
        }))
        {
            await daemon.StartAsync();
            string ours = $"nbd+unix:///disk?socket={socket}";
            string qsdSocket = folder.File("qsd.sock");
            using var qsd = await QemuStorageDaemonQcow2Async(overlay, qsdSocket);
            string theirs = $"nbd+unix:///disk?socket={qsdSocket}";

            await Processes.OkAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", ours, theirs);
            Assert.Equal(Lines(await Processes.OkAsync("nbdinfo", "--map", theirs)), Lines(await Processes.OkAsync("nbdinfo", "--map", ours)));
            Assert.Equal(Lines(await Processes.OkAsync("nbdinfo", "--map=qemu:allocation-depth", theirs)),
                Lines(await Processes.OkAsync("nbdinfo", "--map=qemu:allocation-depth", ours)));
            Assert.Equal(Map(await Processes.OkAsync("qemu-img", "map", "-f", "raw", "--output=json", theirs)),
                Map(await Processes.OkAsync("qemu-img", "map", "-f", "raw", "--output=json", ours)));
        }
    }

    [Fact]
    public async Task WritesThroughNbdLeaveACleanQcow2Image()
    {
        using var folder = new TempFolder();
        string image = folder.File("disk.qcow2");
        await Processes.OkAsync("qemu-img", "create", "-f", "qcow2", image, $"{Size}");
        string socket = folder.File("nbd.sock");
        await using (var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec("disk", image)],
            NbdEndpoints = [NbdEndpoint.Unix(socket)],
        }))
        {
            await daemon.StartAsync();
            string uri = $"nbd+unix:///disk?socket={socket}";
            var fio = await Processes.RunAsync("fio", "--name=q", "--ioengine=nbd", $"--uri={uri}", "--rw=randwrite", "--bs=4k", "--iodepth=32",
                "--size=4M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randseed=5");
            Assert.True(fio.ExitCode == 0, fio.ToString());
            await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x44 5M 1M", "-c", "write -z 5M 64k", "-c", "discard 5767168 64k", uri);
        }

        await Processes.OkAsync("qemu-img", "check", image);
        string back = await Processes.OkAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x44 5308416 448k", "-c", "read -P 0 5M 64k", image);
        Assert.DoesNotContain("verification failed", back);
    }

    private static async Task<Qsd> QemuStorageDaemonQcow2Async(string image, string socket)
    {
        var process = await Qsd.StartAsync(socket,
            "--blockdev", $"driver=qcow2,node-name=top,read-only=on,file.driver=file,file.filename={image}",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", "type=nbd,id=exp0,node-name=top,name=disk,writable=off,allocation-depth=on");
        return process;
    }

    private static string[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToArray();

    private static string[] Map(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray().Select(e =>
            $"{e.GetProperty("start")} {e.GetProperty("length")} {e.GetProperty("depth")} {e.GetProperty("present")} {e.GetProperty("zero")} {e.GetProperty("data")}").ToArray();
    }
}
