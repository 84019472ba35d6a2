using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>The pid file is written under a temporary name and renamed; a link planted at that name is never followed.</summary>
public sealed class StorageDaemonPidFileTests
{
    [Fact]
    public async Task ASymlinkAtThePidFilesTemporaryNameStopsServeWithOneLineAndTheTargetUntouched()
    {
        using var folder = new TempFolder();
        string image = folder.File("foo.img");
        Peer.Run("qemu-img", "create", "-q", "-f", "raw", image, "1M").EnsureSuccess();
        string pidFile = folder.File("serve.pid");
        string victim = folder.File("victim");
        byte[] precious = "the host's precious file\n"u8.ToArray();
        await File.WriteAllBytesAsync(victim, precious);
        File.CreateSymbolicLink(pidFile + ".tmp", victim);
        string nbd = folder.File("n.sock");
        string qmp = folder.File("q.sock");

        using var serve = ServeProcess.Start(folder.Path, null,
            "--drive", $"id=d,file={image},format=raw", "--nbd", $"unix:{nbd}", "--qmp", $"unix:{qmp}", "--pidfile", pidFile);

        Assert.Equal(1, await serve.WaitForExitAsync());
        string error = serve.Error.TrimEnd('\n');
        Assert.Single(error.Split('\n'));
        Assert.StartsWith("strata serve: ", error);
        Assert.Contains(pidFile + ".tmp", error);
        Assert.Equal(precious, await File.ReadAllBytesAsync(victim));
        Assert.Equal(victim, new FileInfo(pidFile + ".tmp").LinkTarget);
        Assert.False(File.Exists(pidFile), "a pid file was left behind");
        Assert.False(File.Exists(nbd), "the NBD socket was left behind");
        Assert.False(File.Exists(qmp), "the control socket was left behind");
    }
}
