using Strata.Cli.Tests;
using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// What Strata writes to RBD, QEMU's rbd driver and the rbd tool read, and the other way round;
/// <c>strata img</c> with rbd: targets agrees with qemu-img on the same images.
/// </summary>
public sealed class RbdInteropTests
{
    private const int Size = 16 << 20;

    [Fact]
    public void ARawImageStrataConvertsIntoRbdIsTheSourceForQemuImgAndRbdExport()
    {
        using var folder = new TempFolder("rbd-interop");
        using var image = new RbdImage("raw");
        string source = Source(folder, seed: 11);
        StrataCli.ImgOk("create", "-f", "raw", image.Locator, Size.ToString());
        StrataCli.ImgOk("convert", "-n", "-O", "raw", source, image.Locator);

        Processes.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", source, image.Locator);
        Assert.True(image.Export().AsSpan().SequenceEqual(File.ReadAllBytes(source)));
    }

    [Fact]
    public void AQcow2ImageStoredInRbdPassesQemuImgCheckAndReadsAsItsSource()
    {
        using var folder = new TempFolder("rbd-interop");
        using var image = new RbdImage("q2");
        string source = Source(folder, seed: 12);
        StrataCli.ImgOk("convert", "-O", "qcow2", source, image.Locator);

        Assert.Contains("file format: qcow2", StrataCli.ImgOk("info", image.Locator).Stdout, StringComparison.Ordinal);
        Processes.Ok("qemu-img", "check", "-f", "qcow2", image.Locator);
        Processes.Ok("qemu-img", "compare", "-f", "raw", "-F", "qcow2", source, image.Locator);
    }

    [Fact]
    public void AnImageRbdImportWroteIsReadByStrataAndMappedAsQemuImgMapsIt()
    {
        using var folder = new TempFolder("rbd-interop");
        using var image = new RbdImage("imp");
        string source = folder.File("sparse.raw");
        using (var file = File.Create(source))
        {
            file.SetLength(Size);
            file.Position = 5 << 20;
            file.Write(RbdImageNodeTests.Pattern(1 << 20, 13));
        }

        RbdImage.Cluster.Rbd("import", "--no-progress", source, image.Spec);
        string back = folder.File("back.raw");
        StrataCli.ImgOk("convert", "-O", "raw", image.Locator, back);
        Assert.True(File.ReadAllBytes(back).AsSpan().SequenceEqual(File.ReadAllBytes(source)));

        string ours = StrataCli.ImgOk("map", "--output=json", "-f", "raw", image.Locator).Stdout;
        string theirs = Processes.Ok("qemu-img", "map", "--output=json", "-f", "raw", image.Locator);
        Assert.Equal(theirs.Trim(), ours.Trim());
        Assert.Contains("\"data\": true", ours, StringComparison.Ordinal);
        Assert.Contains("\"zero\": true", ours, StringComparison.Ordinal);
    }

    [Fact]
    public void ImgCommitOfALocalOverlayWritesItsDataIntoTheRbdBase()
    {
        using var folder = new TempFolder("rbd-interop");
        using var image = new RbdImage("cb");
        StrataCli.ImgOk("create", "-f", "raw", image.Locator, Size.ToString());
        string overlay = folder.File("top.qcow2");
        StrataCli.ImgOk("create", "-f", "qcow2", "-b", image.Locator, "-F", "raw", overlay);
        QemuIo.Ok(overlay, "qcow2", "write -P 0x5a 1M 2M");

        StrataCli.ImgOk("commit", overlay);
        QemuIo.Ok(image.Locator, "raw", "read -P 0x5a 1M 2M", "read -P 0 0 1M", "read -P 0 3M 1M");
    }

    [Fact]
    public void ImgCreateRefusesAnRbdSnapshotAndNamesTheRbdTool()
    {
        using var image = new RbdImage("snapc");
        var result = StrataCli.Img("create", "-f", "raw", image.SnapshotLocator("s"), "1M");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("rbd snap create", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AMalformedRbdLocatorIsOneClearLine()
    {
        var result = StrataCli.Img("info", "rbd:justapool");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("rbd:POOL/[NAMESPACE/]IMAGE", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }

    private static string Source(TempFolder folder, int seed)
    {
        string path = folder.File($"source{seed}.raw");
        var bytes = new byte[Size];
        var pattern = RbdImageNodeTests.Pattern(3 << 20, seed);
        pattern.CopyTo(bytes, 1 << 20);
        pattern.AsSpan(0, 4096).CopyTo(bytes.AsSpan(Size - 4096));
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
