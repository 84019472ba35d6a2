using System.Text;
using System.Text.Json;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// A guest (qemu-io over NBD) on a qcow2 image whose refcounts or mappings are wrong: `strata serve`
/// answers the write that would land on metadata with EIO, as QEMU does ("Preventing invalid write on
/// metadata"), marks the image corrupt, and leaves the header and tables as they were. Chained, such
/// a write used to let a guest rewrite its own header and read a host file through a backing file.
/// </summary>
public sealed class MetadataOverlapOverNbdTests
{
    private const ulong Copied = 1UL << 63;

    [Fact]
    public async Task AnAllocatingWriteOnAZeroedRefcountBlockGetsEioAndTheImageIsMarkedCorrupt()
    {
        using var dir = new TempFolder("ol-nbd");
        var builder = new Qcow2ImageBuilder();
        builder.Patch(builder.RefcountBlockOffset, new byte[builder.ClusterSize]);
        string image = builder.WriteTo(dir.File("disk.qcow2"));
        await AssertGuestWriteRefusedAsync(dir, image, "write -P 0x33 1M 64k", $"read -P 0x{builder.DataPattern:x2} 0 64k");
    }

    [Fact]
    public async Task AnInPlaceWriteOnAClusterThatIsTheRefcountTableGetsEioAndTheImageIsMarkedCorrupt()
    {
        using var dir = new TempFolder("ol-nbd");
        var builder = new Qcow2ImageBuilder();
        builder.L2Entry0 = (ulong)builder.RefcountTableOffsetDefault | Copied;
        string image = builder.WriteTo(dir.File("disk.qcow2"));
        await AssertGuestWriteRefusedAsync(dir, image, "write -P 0x44 0 4k", "read -P 0 1M 64k");
    }

    [Fact]
    public async Task AGuestCannotRewriteItsHeaderToReadAHostFileThroughABackingFile()
    {
        using var dir = new TempFolder("ol-nbd");
        string secret = dir.File("host-secret");
        byte[] marker = Encoding.ASCII.GetBytes("HOST-SECRET-0123456789");
        var secretBytes = new byte[4 << 20];
        for (int i = 0; i + marker.Length <= secretBytes.Length; i += marker.Length)
        {
            marker.CopyTo(secretBytes, i);
        }

        await File.WriteAllBytesAsync(secret, secretBytes);
        var builder = new Qcow2ImageBuilder();
        builder.Patch(builder.RefcountBlockOffset, new byte[builder.ClusterSize]);
        string image = builder.WriteTo(dir.File("disk.qcow2"));
        byte[] before = await File.ReadAllBytesAsync(image);

        // The guest's payload: the same image's header, with the host file as a raw backing file.
        byte[] header = new Qcow2ImageBuilder { BackingFile = secret, BackingFormat = "raw" }.Build()[..builder.ClusterSize];
        string payload = dir.File("payload");
        await File.WriteAllBytesAsync(payload, header);

        string socket = dir.File("n.sock");
        ProcessResult write;
        using (var serve = Start(dir, image, socket, readOnly: false))
        {
            await serve.WaitForFileAsync(socket);
            write = await Processes.RunAsync("qemu-io", ["-f", "raw", "-c", $"write -s {payload} 1M 64k", Uri(socket)]);
            await StopAsync(serve);
        }

        // Restarted with the format given explicitly, as a careful user would.
        using (var again = Start(dir, image, socket, readOnly: false))
        {
            string seen = dir.File("seen.raw");
            var started = again.WaitForFileAsync(socket);
            try
            {
                await started;
            }
            catch (InvalidOperationException)
            {
                // It exited before serving: what the assertions below expect.
            }

            if (started.IsCompletedSuccessfully)
            {
                var convert = await Processes.RunAsync("qemu-img", ["convert", "-f", "raw", "-O", "raw", Uri(socket), seen]);
                convert.AssertSuccess();
                Assert.True((await File.ReadAllBytesAsync(seen)).AsSpan().IndexOf(marker) < 0, "after the restart, the guest reads the host file");
                await StopAsync(again);
            }

            // The image was marked corrupt, so it opens read-only only (a one-line error, no trace).
            Assert.True(await again.WaitForExitAsync() == 1, "the image opened read-write after the refused write");
            Assert.Contains("corrupt", again.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", again.Stderr);
        }

        Assert.True(write.Stdout.Contains("Input/output error", StringComparison.Ordinal), $"the guest's write over the header was not refused with EIO\n{write}");
        using (var readOnly = Start(dir, image, socket, readOnly: true))
        {
            await readOnly.WaitForFileAsync(socket);
            string seen = dir.File("seen-ro.raw");
            var convert = await Processes.RunAsync("qemu-img", ["convert", "-f", "raw", "-O", "raw", Uri(socket), seen]);
            convert.AssertSuccess();
            Assert.True((await File.ReadAllBytesAsync(seen)).AsSpan().IndexOf(marker) < 0, "the guest reads the host file");
            await StopAsync(readOnly);
        }

        var info = JsonDocument.Parse(Images.QemuImg("info", "--output=json", "-f", "qcow2", image).AssertSuccess().Stdout).RootElement;
        Assert.False(info.TryGetProperty("backing-filename", out var backing), $"the image now has a backing file: {backing}");
        AssertUnchangedButTheCorruptBit(before, await File.ReadAllBytesAsync(image));
    }

    /// <summary>
    /// Serves the image, lets qemu-io try <paramref name="attack"/> (it must fail with EIO) and then
    /// <paramref name="read"/> (it must succeed); after a clean stop, qemu-img sees the corrupt bit and
    /// the file's original bytes are unchanged but that bit.
    /// </summary>
    private static async Task AssertGuestWriteRefusedAsync(TempFolder dir, string image, string attack, string read)
    {
        byte[] before = await File.ReadAllBytesAsync(image);
        string socket = dir.File("n.sock");
        using (var serve = Start(dir, image, socket, readOnly: false))
        {
            await serve.WaitForFileAsync(socket);
            var refused = await Processes.RunAsync("qemu-io", ["-f", "raw", "-c", attack, Uri(socket)]);
            Assert.True(refused.Stdout.Contains("Input/output error", StringComparison.Ordinal), $"qemu-io's write was not refused with EIO\n{refused}");
            var again = await Processes.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x55 2M 4k", Uri(socket)]);
            Assert.True(again.Stdout.Contains("Input/output error", StringComparison.Ordinal), $"a later write was not refused\n{again}");
            var reads = await Processes.RunAsync("qemu-io", ["-f", "raw", "-c", read, Uri(socket)]);
            Assert.True(reads.ExitCode == 0 && !reads.Stdout.Contains("fail", StringComparison.OrdinalIgnoreCase)
                && !reads.Stdout.Contains("error", StringComparison.OrdinalIgnoreCase), $"reads stopped working\n{reads}");
            await StopAsync(serve);
        }

        var info = JsonDocument.Parse(Images.QemuImg("info", "--output=json", "-f", "qcow2", image).AssertSuccess().Stdout).RootElement;
        Assert.True(info.GetProperty("format-specific").GetProperty("data").GetProperty("corrupt").GetBoolean(), "qemu-img info does not see the corrupt bit");
        AssertUnchangedButTheCorruptBit(before, await File.ReadAllBytesAsync(image));
    }

    private static BackgroundProcess Start(TempFolder dir, string image, string socket, bool readOnly)
        => ServeProcess.Start(dir.Path, null, "--drive", $"id=d,file={image},format=qcow2{(readOnly ? ",readonly=on" : "")}",
            "--nbd", $"unix:{socket}", "--qmp", $"unix:{dir.File("q.sock")}");

    private static async Task StopAsync(BackgroundProcess serve)
    {
        await serve.SignalAsync("TERM");
        Assert.Equal(0, await serve.WaitForExitAsync());
    }

    private static string Uri(string socket) => $"nbd+unix:///d?socket={socket}";

    private static void AssertUnchangedButTheCorruptBit(byte[] before, byte[] after)
    {
        long changed = Qcow2CorruptBit.FirstOtherChange(before, after);
        Assert.True(changed < 0, $"byte 0x{changed:x} of the image changed: the header or a table was written");
    }
}
