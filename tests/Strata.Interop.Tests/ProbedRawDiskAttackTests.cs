using System.Text;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// The format-probing attack, end to end with qemu-io as the guest: a disk served without an explicit
/// format is probed; its guest writes a qcow2 header naming a host file as backing file into sector 0,
/// hoping that the next start, with the same command line, opens its disk as qcow2 and lets it read
/// the host file. QEMU refuses that write (EPERM) for a probed raw image; so must Strata.
/// </summary>
public sealed class ProbedRawDiskAttackTests
{
    private const long DiskSize = 4 << 20;

    [Fact]
    public async Task AGuestCannotTurnItsProbedRawDiskIntoAQcow2ThatReadsAHostFile()
    {
        using var dir = new TempFolder("probe");
        string secretPath = dir.File("secret.raw");
        await File.WriteAllBytesAsync(secretPath, Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("TOP-SECRET-HOST-DATA ", 4000))));
        string evil = new Qcow2ImageBuilder { BackingFile = secretPath, BackingFormat = "raw", DataPattern = 0 }.WriteTo(dir.File("evil.qcow2"));
        long evilLength = new FileInfo(evil).Length;
        string disk = dir.File("foo.img");
        Images.QemuImg("create", "-q", "-f", "raw", disk, $"{DiskSize}").AssertSuccess();
        string uri = $"nbd+unix:///ide0-hd0?socket={dir.File("n.sock")}";

        using (var serve = await StartAsync(dir, disk))
        {
            Assert.Contains("probing guessed raw", serve.Stderr, StringComparison.Ordinal);
            var whole = Processes.Run("qemu-io", "-f", "raw", "-c", $"write -s {evil} 0 {evilLength}", uri);
            Assert.NotEqual(0, whole.ExitCode);
            Assert.Contains("Operation not permitted", whole.Stdout + whole.Stderr, StringComparison.Ordinal);

            // The rest of the image, past the first sector, is ordinary data and is written.
            Processes.Run("qemu-io", "-f", "raw", "-c", $"write -s {evil} 0 512", uri);
            await serve.SignalAsync("TERM");
            Assert.Equal(0, await serve.WaitForExitAsync());
        }

        using (var again = await StartAsync(dir, disk))
        {
            Assert.Contains("drive 'ide0-hd0': raw", again.Stdout, StringComparison.Ordinal);
            string copy = dir.File("seen.raw");
            Processes.Run("nbdcopy", uri, copy).AssertSuccess();
            byte[] seen = await File.ReadAllBytesAsync(copy);
            Assert.Equal(DiskSize, seen.LongLength);
            Assert.True(seen.AsSpan().IndexOf("TOP-SECRET"u8) < 0, "the guest reads the host file through a backing file it planted");
            Assert.True(seen.AsSpan(0, 512).IndexOfAnyExcept((byte)0) < 0, "the guest's first sector changed");
            await again.SignalAsync("TERM");
            Assert.Equal(0, await again.WaitForExitAsync());
        }
    }

    private static async Task<BackgroundProcess> StartAsync(TempFolder dir, string disk)
    {
        var serve = ServeProcess.Start(dir.Path, null, "-hda", disk, "--nbd", $"unix:{dir.File("n.sock")}", "--qmp", $"unix:{dir.File("q.sock")}");
        await serve.WaitForOutputAsync("NBD on");
        return serve;
    }
}
