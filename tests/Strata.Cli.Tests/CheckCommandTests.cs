using System.Text.Json;
using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class CheckCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public CheckCommandTests()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", _dir.File("c.qcow2"), "1M").AssertSuccess();
        QemuIo.Ok(_dir.File("c.qcow2"), "qcow2", "write -P 0x55 0 128k");
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ACleanImageExitsZeroLikeQemuImg()
    {
        var result = StrataCli.Img("check", _dir.File("c.qcow2"));
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(Processes.Run("qemu-img", "check", _dir.File("c.qcow2")).Stdout, result.Stdout);
        JsonAssert.Equivalent(Processes.Run("qemu-img", "check", "--output=json", _dir.File("c.qcow2")).Stdout, StrataCli.ImgOk("check", "--output=json", _dir.File("c.qcow2")).Stdout);
    }

    [Fact]
    public void LeaksExitThreeAndRepairLeaksFixesThem()
    {
        // One cluster past the image's end, counted but unused: a leak.
        using (var file = new FileStream(_dir.File("c.qcow2"), FileMode.Open))
        {
            file.SetLength(file.Length + 65536);
        }

        Qcow2Tamper.SetRefcount(_dir.File("c.qcow2"), (int)(new FileInfo(_dir.File("c.qcow2")).Length / 65536) - 1, 1);
        Assert.Equal(3, Processes.Run("qemu-img", "check", _dir.File("c.qcow2")).ExitCode);

        var result = StrataCli.Img("check", _dir.File("c.qcow2"));
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("1 leaked clusters were found on the image.", result.Stdout);
        var json = StrataCli.Img("check", "--output=json", _dir.File("c.qcow2"));
        Assert.Equal(3, json.ExitCode);
        Assert.Equal(1, JsonDocument.Parse(json.Stdout).RootElement.GetProperty("leaks").GetInt64());

        var repair = StrataCli.Img("check", "-r", "leaks", _dir.File("c.qcow2"));
        Assert.Equal(0, repair.ExitCode);
        Assert.Contains("Double checking the fixed image now...", repair.Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("c.qcow2")).ExitCode);
    }

    [Fact]
    public void CorruptionsExitTwo()
    {
        // Cluster 5 holds guest data but its refcount says free: a corruption.
        Qcow2Tamper.SetRefcount(_dir.File("c.qcow2"), 5, 0);
        Assert.Equal(2, Processes.Run("qemu-img", "check", _dir.File("c.qcow2")).ExitCode);
        var result = StrataCli.Img("check", _dir.File("c.qcow2"));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("errors were found on the image.", result.Stdout);
        Assert.Equal(2, StrataCli.Img("check", "--output=json", _dir.File("c.qcow2")).ExitCode);
        Assert.Equal(0, StrataCli.Img("check", "-q", "-r", "all", _dir.File("c.qcow2")).ExitCode);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("c.qcow2")).ExitCode);
    }

    [Fact]
    public void RepairAllTakesAnImageMarkedCorruptAndClearsTheMarkAsQemuImgDoes()
    {
        // A refused write marks an image corrupt: it then opens read-only only, and check -r all is
        // the way back, for qemu-img and for us.
        string image = _dir.File("c.qcow2");
        using (var file = new FileStream(image, FileMode.Open))
        {
            var features = new byte[8];
            file.Position = Qcow2HeaderOffsets.IncompatibleFeatures;
            file.ReadExactly(features);
            features[7] |= (byte)Qcow2CorruptBit.Mask;
            file.Position = Qcow2HeaderOffsets.IncompatibleFeatures;
            file.Write(features);
        }

        Assert.Contains("\"corrupt\": true", Processes.Run("qemu-img", "info", "--output=json", image).Stdout, StringComparison.Ordinal);
        var repair = StrataCli.Img("check", "-r", "all", image);
        Assert.Equal(0, repair.ExitCode);
        Assert.Contains("\"corrupt\": false", Processes.Run("qemu-img", "info", "--output=json", image).Stdout, StringComparison.Ordinal);
        Assert.Equal(0, Processes.Run("qemu-img", "check", image).ExitCode);
    }

    [Fact]
    public void RawImagesDoNotSupportChecksLikeQemuImg()
    {
        StrataCli.ImgOk("create", "-q", _dir.File("a.raw"), "1M");
        var qemu = Processes.Run("qemu-img", "check", _dir.File("a.raw"));
        var result = StrataCli.Img("check", _dir.File("a.raw"));
        Assert.Equal(qemu.ExitCode, result.ExitCode);
        Assert.Equal(63, result.ExitCode);
        Assert.Equal("strata img: This image format does not support checks\n", result.Stderr);
    }
}
