using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class InfoCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawJsonAgreesWithQemuImg()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("a.raw"), "10G").AssertSuccess();
        JsonAssert.Equivalent(Processes.Run("qemu-img", "info", "--output=json", _dir.File("a.raw")).AssertSuccess().Stdout,
            StrataCli.ImgOk("info", "--output=json", _dir.File("a.raw")).Stdout);
    }

    [Fact]
    public void QcowJsonAndTextAgreeWithQemuImgIncludingTheBackingChain()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("base.raw"), "64M").AssertSuccess();
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", _dir.File("top.qcow2")).AssertSuccess();
        QemuIo.Ok(_dir.File("top.qcow2"), "qcow2", "write -P 9 1M 200k");
        foreach (string[] args in new[]
        {
            new[] { "info", _dir.File("top.qcow2") },
            ["info", "--backing-chain", _dir.File("top.qcow2")],
        })
        {
            Assert.Equal(Processes.Run("qemu-img", args).AssertSuccess().Stdout, StrataCli.ImgOk(args).Stdout);
        }

        JsonAssert.Equivalent(Processes.Run("qemu-img", "info", "--output=json", _dir.File("top.qcow2")).AssertSuccess().Stdout,
            StrataCli.ImgOk("info", "--output=json", _dir.File("top.qcow2")).Stdout);
        JsonAssert.Equivalent(Processes.Run("qemu-img", "info", "--output=json", "--backing-chain", _dir.File("top.qcow2")).AssertSuccess().Stdout,
            StrataCli.ImgOk("info", "--output=json", "--backing-chain", _dir.File("top.qcow2")).Stdout);
    }

    [Fact]
    public void VersionTwoImagesShowOnlyTheirFields()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", _dir.File("v2.qcow2"), "1G").AssertSuccess();
        Assert.Equal(Processes.Run("qemu-img", "info", _dir.File("v2.qcow2")).AssertSuccess().Stdout, StrataCli.ImgOk("info", _dir.File("v2.qcow2")).Stdout);
        JsonAssert.Equivalent(Processes.Run("qemu-img", "info", "--output=json", _dir.File("v2.qcow2")).AssertSuccess().Stdout,
            StrataCli.ImgOk("info", "--output=json", _dir.File("v2.qcow2")).Stdout);
    }

    [Fact]
    public void RelativeNamesPrintLikeQemuImgFromAnyFolder()
    {
        Directory.CreateDirectory(_dir.File("sub"));
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("foo.img"), "1M").AssertSuccess();
        var create = Processes.Strata(["img", "create", "-q", "-f", "qcow2", "-b", "../foo.img", "sub/ov.qcow2"], ProcessOptions.In(_dir.Path));
        Assert.True(create.ExitCode == 0, create.ToString());
        foreach (var (folder, file) in new[] { (_dir.Path, "sub/ov.qcow2"), (_dir.File("sub"), "ov.qcow2") })
        {
            foreach (string[] args in new[]
            {
                new[] { "info", "--backing-chain", file },
                ["info", "--output=json", "--backing-chain", file],
                ["map", file],
                ["map", "--output=json", file],
            })
            {
                Assert.Equal(Processes.Run("qemu-img", args, ProcessOptions.In(folder)).Stdout, Processes.Strata(["img", .. args], ProcessOptions.In(folder)).Stdout);
            }
        }
    }

    [Fact]
    public void AMissingFileIsOneLineOnStderr()
    {
        var result = StrataCli.Img("info", _dir.File("nope"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"strata img: Could not open '{_dir.File("nope")}': No such file or directory\n", result.Stderr);
        Assert.Empty(result.Stdout);
    }

    [Fact]
    public void ABadOutputFormatIsRefused()
    {
        StrataCli.ImgOk("create", "-q", _dir.File("a.raw"), "1M");
        var result = StrataCli.Img("info", "--output=xml", _dir.File("a.raw"));
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("strata img: --output must be used with human or json", result.Stderr);
    }
}
