using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// The single-node Ceph the RBD and S3 tests stand on answers as the peers expect: qemu-img's rbd
/// driver and the rbd tool see the same image, and the gateway speaks S3.
/// </summary>
public sealed class CephClusterTests
{
    [Fact]
    public void AnImageQemuImgCreatesInThePoolIsListedByRbdWithItsSize()
    {
        var ceph = CephCluster.Shared;
        string image = CephCluster.UniqueName("cluster");
        Processes.Ok("qemu-img", "create", "-f", "raw", ceph.RbdLocator(image), "8M");
        try
        {
            Assert.Contains(image, ceph.Rbd("ls", ceph.Pool).Split('\n'));
            Assert.Contains("\"size\":8388608", ceph.Rbd("info", "--format", "json", $"{ceph.Pool}/{image}"), StringComparison.Ordinal);
        }
        finally
        {
            ceph.Rbd("rm", "--no-progress", $"{ceph.Pool}/{image}");
        }
    }

    [Fact]
    public async Task TheGatewayAnswersAnAnonymousRequestWithAnS3BucketList()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        string body = await http.GetStringAsync(new Uri(CephCluster.Shared.S3Endpoint + "/"));
        Assert.Contains("ListAllMyBucketsResult", body, StringComparison.Ordinal);
    }
}
