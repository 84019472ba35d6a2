using Strata.Cli.Tests;
using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// RBD images on a cluster that authenticates with cephx, named as QEMU names them
/// (<c>:id=USER:keyring=PATH</c>): the user's own pool works for Strata and for qemu-img alike; a
/// wrong key, an unknown user and a pool the user may not touch each end in one line naming the
/// image, with exit 1, never a hang or a stack trace.
/// </summary>
public sealed class RbdCephxTests(CephxCluster cephx) : IClassFixture<CephxCluster>
{
    private const int Size = 8 << 20;

    [Fact]
    public void ACephxUserWritesItsPoolWithStrataAndQemuImgReadsTheSameBytes()
    {
        using var folder = new TempFolder("rbd-cephx");
        string name = CephCluster.UniqueName("cx");
        string source = folder.File("source.raw");
        File.WriteAllBytes(source, RbdImageNodeTests.Pattern(Size, seed: 31));

        StrataCli.ImgOk("create", "-f", "raw", cephx.Locator(name), Size.ToString());
        StrataCli.ImgOk("convert", "-n", "-O", "raw", source, cephx.Locator(name));

        Processes.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", source, cephx.Locator(name));
        string back = folder.File("back.raw");
        Processes.Ok("rbd", "-c", cephx.Cluster.Conf, "export", "--no-progress", $"{cephx.Cluster.Pool}/{name}", back);
        Assert.True(File.ReadAllBytes(back).AsSpan().SequenceEqual(File.ReadAllBytes(source)));
    }

    [Fact]
    public void AWrongKeyIsRefusedInOneLineNamingTheImage()
    {
        using var folder = new TempFolder("rbd-cephx");
        string name = CephCluster.UniqueName("cx");
        StrataCli.ImgOk("create", "-f", "raw", cephx.Locator(name), Size.ToString());

        // The user's keyring with another key in it: the monitor refuses the client.
        string wrong = folder.File("wrong.keyring");
        File.WriteAllLines(wrong, File.ReadAllLines(cephx.User.Keyring)
            .Select(line => line.TrimStart().StartsWith("key", StringComparison.Ordinal) ? "\tkey = AQBmZmZmAAAAABAAu+J5sd0Pb5ZtVq7cmVf0+w==" : line));

        AssertRefused(StrataCli.Img("info", cephx.Locator(name, keyring: wrong)), $"rbd:{cephx.Cluster.Pool}/{name}", "Permission denied");
    }

    [Fact]
    public void AnUnknownUserIsRefusedInOneLine()
    {
        string name = CephCluster.UniqueName("cx");
        StrataCli.ImgOk("create", "-f", "raw", cephx.Locator(name), Size.ToString());

        AssertRefused(StrataCli.Img("info", cephx.Locator(name, id: "nobody")), $"rbd:{cephx.Cluster.Pool}/{name}", "Permission denied");
    }

    [Fact]
    public void APoolTheUserMayNotTouchIsRefusedForCreateAndForReadingWhatAnotherUserMadeThere()
    {
        string pool = cephx.Cluster.Setting("STRATA_RBD_OTHER_POOL");
        string theirs = CephCluster.UniqueName("cx");
        cephx.Cluster.Rbd("create", "--size", "8M", $"{pool}/{theirs}");

        AssertRefused(StrataCli.Img("create", "-f", "raw", cephx.Locator(CephCluster.UniqueName("cx"), pool: pool), Size.ToString()),
            $"rbd:{pool}/", "Operation not permitted");
        AssertRefused(StrataCli.Img("info", cephx.Locator(theirs, pool: pool)), $"rbd:{pool}/{theirs}", "Operation not permitted");

        // The refusals touched nothing: the image the admin made is still there, and no other appeared.
        Assert.Equal([theirs], cephx.Cluster.Rbd("ls", pool).Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>Exit 1 and Strata's own line, alone, naming the image and the cluster's reason; no stack trace anywhere.</summary>
    private static void AssertRefused(ProcessResult result, string image, string reason)
    {
        Assert.True(result.ExitCode == 1, result.ToString());
        // One line: librados' own timestamped error lines (the cluster's conf sets "err to stderr") are kept off.
        string last = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("strata img: ", last, StringComparison.Ordinal);
        Assert.Contains(image, last, StringComparison.Ordinal);
        Assert.Contains(reason, last, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
    }
}
