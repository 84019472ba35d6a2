using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// The pid file is written under a temporary name and renamed: a link planted at that name is never
/// followed, a leftover does not block a start, and a start that fails never removes a pid file it
/// did not write.
/// </summary>
public sealed class StorageDaemonPidFileTests
{
    [Fact]
    public async Task ASymlinkAtThePidFilesTemporaryNameIsNeverFollowed()
    {
        using var folder = new TempFolder();
        string pidFile = folder.File("serve.pid");
        string victim = folder.File("victim");
        byte[] precious = "the host's precious file\n"u8.ToArray();
        await File.WriteAllBytesAsync(victim, precious);
        File.CreateSymbolicLink(pidFile + ".tmp", victim);

        await ServeAndStopAsync(folder, pidFile);
        Assert.Equal(precious, await File.ReadAllBytesAsync(victim));
    }

    [Fact]
    public async Task ATemporaryPidFileAKilledDaemonLeftDoesNotBlockTheNextStart()
    {
        using var folder = new TempFolder();
        string pidFile = folder.File("serve.pid");
        await File.WriteAllTextAsync(pidFile + ".tmp", "4242\n");
        await ServeAndStopAsync(folder, pidFile);
    }

    [Fact]
    public async Task AStartThatFailsLeavesAnotherDaemonsPidFileAlone()
    {
        using var folder = new TempFolder();
        string pidFile = folder.File("serve.pid");
        await File.WriteAllTextAsync(pidFile, "4242\n");
        using var serve = ServeProcess.Start(folder.Path, null,
            "--drive", $"id=d,file={folder.File("missing.img")},format=raw", "--nbd", $"unix:{folder.File("n.sock")}",
            "--qmp", $"unix:{folder.File("q.sock")}", "--pidfile", pidFile);
        Assert.Equal(1, await serve.WaitForExitAsync());
        Assert.Equal("4242\n", await File.ReadAllTextAsync(pidFile));
    }

    /// <summary>Starts serve with <paramref name="pidFile"/>, checks the pid in it, stops it and checks nothing is left.</summary>
    private static async Task ServeAndStopAsync(TempFolder folder, string pidFile)
    {
        string image = folder.File("foo.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, "1M").AssertSuccess();
        string nbd = folder.File("n.sock");
        using var serve = ServeProcess.Start(folder.Path, null,
            "--drive", $"id=d,file={image},format=raw", "--nbd", $"unix:{nbd}", "--qmp", $"unix:{folder.File("q.sock")}", "--pidfile", pidFile);
        await serve.WaitForFileAsync(pidFile);
        Assert.Equal($"{serve.Id}", (await File.ReadAllTextAsync(pidFile)).Trim());
        Assert.False(Path.Exists(pidFile + ".tmp"), "the temporary pid file is still there");
        await serve.SignalAsync("TERM");
        Assert.Equal(0, await serve.WaitForExitAsync());
        Assert.False(File.Exists(pidFile), "the pid file was left behind");
        Assert.False(File.Exists(nbd), "the NBD socket was left behind");
    }
}
