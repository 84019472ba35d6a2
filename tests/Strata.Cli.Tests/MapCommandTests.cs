using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class MapCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawMapEqualsQemuImgs()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("a.raw"), "4M").AssertSuccess();
        QemuIo.Ok(_dir.File("a.raw"), "raw", "write -P 1 64k 64k", "write -P 2 1M 4k", "write -P 3 3M 1M");
        foreach (string output in new[] { "json", "human" })
        {
            Assert.Equal(Processes.Run("qemu-img", "map", "-f", "raw", "--output=" + output, _dir.File("a.raw")).AssertSuccess().Stdout,
                StrataCli.ImgOk("map", "-f", "raw", "--output=" + output, _dir.File("a.raw")).Stdout);
        }
    }

    [Fact]
    public void QcowChainMapEqualsQemuImgs()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("base.raw"), "2M").AssertSuccess();
        QemuIo.Ok(_dir.File("base.raw"), "raw", "write -P 1 64k 64k", "write -P 2 512k 4k");
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", _dir.File("mid.qcow2")).AssertSuccess();
        QemuIo.Ok(_dir.File("mid.qcow2"), "qcow2", "write -P 4 1M 128k");
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", _dir.File("top.qcow2")).AssertSuccess();
        QemuIo.Ok(_dir.File("top.qcow2"), "qcow2", "write -P 5 0 4k", "write -z 128k 64k", "write -P 6 1000k 24k");
        foreach (string file in new[] { "top.qcow2", "mid.qcow2" })
        {
            foreach (string output in new[] { "json", "human" })
            {
                Assert.Equal(Processes.Run("qemu-img", "map", "--output=" + output, _dir.File(file)).AssertSuccess().Stdout,
                    StrataCli.ImgOk("map", "--output=" + output, _dir.File(file)).Stdout);
            }
        }
    }

    [Fact]
    public void QcowWithoutBackingMapEqualsQemuImgs()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", _dir.File("n.qcow2"), "1M").AssertSuccess();
        QemuIo.Ok(_dir.File("n.qcow2"), "qcow2", "write -P 5 64k 4k");
        Assert.Equal(Processes.Run("qemu-img", "map", "--output=json", _dir.File("n.qcow2")).AssertSuccess().Stdout, StrataCli.ImgOk("map", "--output=json", _dir.File("n.qcow2")).Stdout);
    }
}
