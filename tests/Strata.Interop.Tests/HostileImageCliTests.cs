using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>At the edge a hostile image gets one clear line on stderr and exit 1, never a stack trace.</summary>
public sealed class HostileImageCliTests
{
    public static TheoryData<string> Images => ["cluster-bits", "huge-l1", "l1-beyond-eof", "unknown-feature", "truncated", "extension-overflow", "backing-too-long"];

    [Theory]
    [MemberData(nameof(Images))]
    public void StrataImgInfoPrintsOneLineAndExitsOne(string which)
    {
        using var dir = new TempFolder("cli");
        string path = Craft(which).WriteTo(dir.File($"{which}.qcow2"));
        var result = Processes.Strata("img", "info", path);
        Assert.True(result.ExitCode == 1, $"{which}: expected exit 1\n{result}");
        string[] lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"{which}: expected one line on stderr\n{result}");
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", result.Stdout.Trim());
    }

    [Fact]
    public void StrataImgCheckOfAnUnopenableImageExitsOneLikeQemuImg()
    {
        using var dir = new TempFolder("cli");
        string path = Craft("huge-l1").WriteTo(dir.File("bad.qcow2"));
        var result = Processes.Strata("img", "check", path);
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
    }

    private static Qcow2ImageBuilder Craft(string which)
    {
        var b = new Qcow2ImageBuilder();
        switch (which)
        {
            case "cluster-bits":
                b.ClusterBits = 30;
                break;
            case "huge-l1":
                b.L1Size = 0x10000000;
                break;
            case "l1-beyond-eof":
                b.L1TableOffset = 1UL << 40;
                break;
            case "unknown-feature":
                b.IncompatibleFeatures = 1UL << 40;
                break;
            case "truncated":
                b.TruncateTo = 60;
                break;
            case "extension-overflow":
                b.Extensions.Add(new Qcow2Extension(0x1234abcd, new byte[8], 0x7ffffff0));
                break;
            case "backing-too-long":
                b.BackingFile = "base.raw";
                b.BackingFileSize = 0xffffff;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(which), which, "unknown hostile image");
        }

        return b;
    }
}
