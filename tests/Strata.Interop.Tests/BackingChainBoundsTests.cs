using Strata.Block;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// Backing chains are pointers an image file controls: a chain that loops, or one deeper than the
/// bound, is refused at open with one line, never followed forever.
/// </summary>
public sealed class BackingChainBoundsTests
{
    [Fact]
    public async Task TwoImagesThatNameEachOtherAsBackingAreRefused()
    {
        using var dir = new TempFolder("chain");
        string a = dir.File("a.qcow2");
        string b = dir.File("b.qcow2");
        Images.QemuImg("create", "-q", "-f", "qcow2", a, "1M").AssertSuccess();
        Images.QemuImg("create", "-q", "-f", "qcow2", "-b", a, "-F", "qcow2", b).AssertSuccess();
        Images.QemuImg("rebase", "-u", "-f", "qcow2", "-b", b, "-F", "qcow2", a).AssertSuccess();

        var e = await Assert.ThrowsAsync<BlockException>(async () => await Images.OpenAsync(b, readOnly: true));
        Assert.Contains("loops back", e.Message, StringComparison.Ordinal);
        var info = Processes.Strata("img", "info", "--backing-chain", b);
        Assert.Equal(1, info.ExitCode);
        Assert.Single(info.Stderr.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public async Task AChainDeeperThanTheBoundIsRefused()
    {
        using var dir = new TempFolder("chain");
        string below = dir.File("0.qcow2");
        Images.QemuImg("create", "-q", "-f", "qcow2", below, "1M").AssertSuccess();
        for (int i = 1; i <= 65; i++)
        {
            string above = dir.File($"{i}.qcow2");
            Images.QemuImg("create", "-q", "-f", "qcow2", "-b", below, "-F", "qcow2", above).AssertSuccess();
            below = above;
        }

        var e = await Assert.ThrowsAsync<BlockException>(async () => await Images.OpenAsync(below, readOnly: true));
        Assert.Contains("deeper than 64", e.Message, StringComparison.Ordinal);
        await using var within = await Images.OpenAsync(dir.File("63.qcow2"), readOnly: true);
        Assert.Equal(1L << 20, within.Size);
    }
}
