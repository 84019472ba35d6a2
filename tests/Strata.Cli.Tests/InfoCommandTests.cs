using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class InfoCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawJsonAgreesWithQemuImg()
    {
        Run.QemuImgOk("create", "-q", "-f", "raw", _dir.File("a.raw"), "10G");
        JsonAssert.Equivalent(Run.QemuImgOk("info", "--output=json", _dir.File("a.raw")).Output,
            Run.ImgOk("info", "--output=json", _dir.File("a.raw")).Output);
    }

    [Fact]
    public void QcowJsonAndTextAgreeWithQemuImgIncludingTheBackingChain()
    {
        Run.QemuImgOk("create", "-q", "-f", "raw", _dir.File("base.raw"), "64M");
        Run.QemuImgOk("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", _dir.File("top.qcow2"));
        Run.QemuIo(_dir.File("top.qcow2"), "qcow2", "write -P 9 1M 200k");
        foreach (string[] args in new[]
        {
            new[] { "info", _dir.File("top.qcow2") },
            ["info", "--backing-chain", _dir.File("top.qcow2")],
        })
        {
            Assert.Equal(Run.QemuImgOk(args).Output, Run.ImgOk(args).Output);
        }

        JsonAssert.Equivalent(Run.QemuImgOk("info", "--output=json", _dir.File("top.qcow2")).Output,
            Run.ImgOk("info", "--output=json", _dir.File("top.qcow2")).Output);
        JsonAssert.Equivalent(Run.QemuImgOk("info", "--output=json", "--backing-chain", _dir.File("top.qcow2")).Output,
            Run.ImgOk("info", "--output=json", "--backing-chain", _dir.File("top.qcow2")).Output);
    }

    [Fact]
    public void VersionTwoImagesShowOnlyTheirFields()
    {
        Run.QemuImgOk("create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", _dir.File("v2.qcow2"), "1G");
        Assert.Equal(Run.QemuImgOk("info", _dir.File("v2.qcow2")).Output, Run.ImgOk("info", _dir.File("v2.qcow2")).Output);
        JsonAssert.Equivalent(Run.QemuImgOk("info", "--output=json", _dir.File("v2.qcow2")).Output,
            Run.ImgOk("info", "--output=json", _dir.File("v2.qcow2")).Output);
    }

    [Fact]
    public void RelativeNamesPrintLikeQemuImgFromAnyFolder()
    {
        Directory.CreateDirectory(_dir.File("sub"));
        Run.QemuImgOk("create", "-q", "-f", "raw", _dir.File("foo.img"), "1M");
        var create = Run.StrataIn(_dir.Path, "img", "create", "-q", "-f", "qcow2", "-b", "../foo.img", "sub/ov.qcow2");
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
                Assert.Equal(Run.ToolIn(folder, "qemu-img", args).Output, Run.StrataIn(folder, ["img", .. args]).Output);
            }
        }
    }

    [Fact]
    public void AMissingFileIsOneLineOnStderr()
    {
        var result = Run.Img("info", _dir.File("nope"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"strata img: Could not open '{_dir.File("nope")}': No such file or directory\n", result.Error);
        Assert.Empty(result.Output);
    }

    [Fact]
    public void ABadOutputFormatIsRefused()
    {
        Run.ImgOk("create", "-q", _dir.File("a.raw"), "1M");
        var result = Run.Img("info", "--output=xml", _dir.File("a.raw"));
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("strata img: --output must be used with human or json", result.Error);
    }
}
