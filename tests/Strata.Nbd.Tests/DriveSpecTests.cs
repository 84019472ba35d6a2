using Strata.Block;
using Strata.Daemon;
using Strata.Nbd.Transport;

namespace Strata.Nbd.Tests;

public sealed class DriveSpecTests
{
    [Fact]
    public void EveryKeyIsRead()
    {
        var spec = DriveSpec.Parse("id=disk0,file=/images/a,,b.img,format=qcow2,readonly=on,cache=none");
        Assert.Equal(new DriveSpec("disk0", "/images/a,b.img", "qcow2", ReadOnly: true, Direct: true), spec);
    }

    [Fact]
    public void ErrorPoliciesDefaultAsQemusDriveDoes()
    {
        var spec = DriveSpec.Parse("id=d,file=a.img");
        Assert.Equal(IoErrorPolicy.StopOnNoSpace, spec.WriteErrorPolicy);
        Assert.Equal(IoErrorPolicy.Report, spec.ReadErrorPolicy);
    }

    [Theory]
    [InlineData("werror=stop,rerror=stop", IoErrorPolicy.Stop, IoErrorPolicy.Stop)]
    [InlineData("werror=report,rerror=report", IoErrorPolicy.Report, IoErrorPolicy.Report)]
    [InlineData("werror=enospc,rerror=stop", IoErrorPolicy.StopOnNoSpace, IoErrorPolicy.Stop)]
    public void ErrorPoliciesAreRead(string keys, IoErrorPolicy write, IoErrorPolicy read)
    {
        var spec = DriveSpec.Parse($"id=d,file=a.img,{keys}");
        Assert.Equal(write, spec.WriteErrorPolicy);
        Assert.Equal(read, spec.ReadErrorPolicy);
    }

    [Theory]
    [InlineData("cache.direct=on", true)]
    [InlineData("cache.direct=off", false)]
    [InlineData("cache=none", true)]
    [InlineData("cache=writeback", false)]
    public void QemusCacheDirectSpellingMeansCacheNone(string cache, bool direct)
    {
        Assert.Equal(direct, DriveSpec.Parse($"id=d,file=a.img,{cache}").Direct);
    }

    [Theory]
    [InlineData("file=a.img", "id=NAME")]
    [InlineData("id=x", "file=PATH")]
    [InlineData("id=x,file=a,format=vmdk", "unknown format")]
    [InlineData("id=x,file=a,colour=blue", "unknown key")]
    [InlineData("id=x,file=a,readonly=maybe", "on or off")]
    [InlineData("id=x,file=a,cache=directsync", "writeback or none")]
    [InlineData("id=x,file=a,cache.direct=maybe", "on or off")]
    [InlineData("id=x,file", "key=value")]
    [InlineData("id=x,file=a,werror=ignore", "would answer a failed request as done")]
    [InlineData("id=x,file=a,rerror=ignore", "would answer a failed request as done")]
    [InlineData("id=x,file=a,rerror=enospc", "report or stop")]
    [InlineData("id=x,file=a,werror=retry", "enospc, stop or report")]
    public void BadDrivesAreRefusedWithOneLine(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => DriveSpec.Parse(text));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("unix:/run/x.sock", true)]
    [InlineData("tcp:127.0.0.1:10809", false)]
    [InlineData("tcp:[::1]:10809", false)]
    public void EndpointsParse(string text, bool unix)
    {
        var endpoint = NbdEndpoint.Parse(text);
        Assert.Equal(unix, endpoint.IsUnix);
        Assert.Equal(text, endpoint.ToString());
    }

    [Theory]
    [InlineData("tcp::10809")]
    [InlineData("tcp:10809")]
    [InlineData("unix:")]
    [InlineData("vsock:3:10809")]
    public void BadEndpointsAreRefused(string text) => Assert.Throws<FormatException>(() => NbdEndpoint.Parse(text));

    [Fact]
    public void SocketsGoUnderTheRuntimeFolderOrTheCurrentOne()
    {
        Assert.Equal(Path.Combine("/run/user/1000", "strata"), SocketDefaults.Directory(_ => "/run/user/1000"));
        Assert.Equal(Path.Combine(Environment.CurrentDirectory, ".strata"), SocketDefaults.Directory(_ => null));
    }
}
