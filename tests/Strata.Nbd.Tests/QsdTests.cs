using System.Globalization;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>The test kit's qemu-storage-daemon: it serves, answers QMP through the product's client, and fails loudly when it cannot start.</summary>
public sealed class QsdTests
{
    [Fact]
    public async Task ARawExportServesItsQmpAnswersThroughQmpClientAndDisposeKillsIt()
    {
        using var folder = new TempFolder("qsd");
        string image = folder.File("disk.img");
        await Processes.OkAsync("truncate", "-s", "1M", image);
        string socket = folder.File("n.sock");
        var qsd = await Qsd.StartAsync(socket, folder.File("q.sock"), [
            "--blockdev", $"driver=file,node-name=file0,filename={image}",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", "type=nbd,id=exp0,node-name=file0,name=disk,writable=on"]);
        int pid = qsd.Id;
        await using (qsd)
        {
            Assert.Equal("1048576", (await Processes.OkAsync("nbdinfo", "--size", qsd.Uri)).Trim());
            await using var qmp = await qsd.ConnectQmpAsync();
            var nodes = await qmp.ExecuteAsync("query-named-block-nodes");
            Assert.Contains(nodes!.AsArray(), node => node!["node-name"]!.GetValue<string>() == "file0");
        }

        await ProcessesTests.AssertGoneAsync(pid);
    }

    [Fact]
    public async Task AStartThatFailsThrowsWithQsdsStderr()
    {
        using var folder = new TempFolder("qsd");
        string missing = folder.File("missing.img");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            Qsd.StartAsync(folder.File("n.sock"), "--blockdev", $"driver=file,node-name=file0,filename={missing}"));
        Assert.Contains($"Could not open '{missing}'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASocketThatNeverAppearsThrowsAndTheDaemonIsKilled()
    {
        using var folder = new TempFolder("qsd");
        string expected = folder.File("expected.sock");
        var e = await Assert.ThrowsAsync<TimeoutException>(() => Qsd.StartAsync(expected, null,
            ["--nbd-server", $"addr.type=unix,addr.path={folder.File("other.sock")}"], TimeSpan.FromSeconds(2)));
        Assert.Contains($"qemu-storage-daemon did not create {expected}", e.Message, StringComparison.Ordinal);
        await ProcessesTests.AssertGoneAsync(int.Parse(File.ReadAllText(expected + ".pid").Trim(), CultureInfo.InvariantCulture));
    }
}
