using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class MapCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawMapEqualsQemuImgs()
    {
        Run.QemuImgOk("create", "-q", "-f", "raw", _dir.File("a.raw"), "4M");
        Run.QemuIo(_dir.File("a.raw"), "raw", "write -P 1 64k 64k", "write -P 2 1M 4k", "write -P 3 3M 1M");
        foreach (string output in new[] { "json", "human" })
        {
            Assert.Equal(Run.QemuImgOk("map", "-f", "raw", "--output=" + output, _dir.File("a.raw")).Output,
                Run.ImgOk("map", "-f", "raw", "--output=" + output, _dir.File("a.raw")).Output);
        }
    }

    [Fact]
    public void QcowChainMapEqualsQemuImgs()
    {
        Run.QemuImgOk("create", "-q", "-f", "raw", _dir.File("base.raw"), "2M");
        Run.QemuIo(_dir.File("base.raw"), "raw", "write -P 1 64k 64k", "write -P 2 512k 4k");
        Run.QemuImgOk("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", _dir.File("mid.qcow2"));
        Run.QemuIo(_dir.File("mid.qcow2"), "qcow2", "write -P 4 1M 128k");
        Run.QemuImgOk("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", _dir.File("top.qcow2"));
        Run.QemuIo(_dir.File("top.qcow2"), "qcow2", "write -P 5 0 4k", "write -z 128k 64k", "write -P 6 1000k 24k");
        foreach (string file in new[] { "top.qcow2", "mid.qcow2" })
        {
            foreach (string output in new[] { "json", "human" })
            {
                Assert.Equal(Run.QemuImgOk("map", "--output=" + output, _dir.File(file)).Output,
                    Run.ImgOk("map", "--output=" + output, _dir.File(file)).Output);
            }
        }
    }

    [Fact]
    public void QcowWithoutBackingMapEqualsQemuImgs()
    {
        Run.QemuImgOk("create", "-q", "-f", "qcow2", _dir.File("n.qcow2"), "1M");
        Run.QemuIo(_dir.File("n.qcow2"), "qcow2", "write -P 5 64k 4k");
        Assert.Equal(Run.QemuImgOk("map", "--output=json", _dir.File("n.qcow2")).Output, Run.ImgOk("map", "--output=json", _dir.File("n.qcow2")).Output);
    }
}
