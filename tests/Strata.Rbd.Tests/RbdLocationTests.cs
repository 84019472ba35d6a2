using Strata.Block;
using Strata.Formats.Rbd;

namespace Strata.Rbd.Tests;

/// <summary>QEMU's rbd: spelling, parsed as block/rbd.c parses it.</summary>
public sealed class RbdLocationTests
{
    [Fact]
    public void PoolImageSnapshotAndOptionsAreParsed()
    {
        var location = RbdLocation.Parse("pool/ns/img@snap:conf=/etc/ceph/a.conf:id=alice:rbd_cache=false");
        Assert.Equal(("pool", "ns", "img", "snap", "/etc/ceph/a.conf", "alice"),
            (location.Pool, location.Namespace, location.Image, location.Snapshot, location.Conf, location.User));
        Assert.Equal([new KeyValuePair<string, string>("rbd_cache", "false")], location.Options);
    }

    [Fact]
    public void ABackslashEscapesAColonInAValue()
    {
        var location = RbdLocation.Parse(@"rbd/img:conf=/tmp/a\:b/ceph.conf");
        Assert.Equal("/tmp/a:b/ceph.conf", location.Conf);
        Assert.Null(location.Snapshot);
        Assert.Null(location.Namespace);
    }

    [Theory]
    [InlineData("justapool")]
    [InlineData("pool/")]
    [InlineData("a/b/c/d")]
    [InlineData("pool/img@")]
    [InlineData("pool/img@a@b")]
    [InlineData("pool/img:noequals")]
    public void ABadLocatorIsRefusedWithTheSpelling(string target)
    {
        var error = Assert.Throws<BlockException>(() => RbdLocation.Parse(target));
        Assert.Equal(BlockError.InvalidArgument, error.Error);
        Assert.Contains("rbd:POOL/[NAMESPACE/]IMAGE[@SNAP]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ImagesWithTheSameConfigurationShareAClusterKey()
    {
        Assert.Equal(RbdLocation.Parse("p/a:conf=/c").ClusterKey, RbdLocation.Parse("q/b@s:conf=/c").ClusterKey);
        Assert.NotEqual(RbdLocation.Parse("p/a:conf=/c").ClusterKey, RbdLocation.Parse("p/a:conf=/d").ClusterKey);
    }
}
