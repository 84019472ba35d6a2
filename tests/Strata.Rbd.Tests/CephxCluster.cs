using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// A cluster of the test class's own that authenticates with cephx, as production clusters do (the
/// shared one runs without authentication), with a client allowed one pool only (ceph/cluster.sh,
/// STRATA_CEPH_AUTH=cephx).
/// </summary>
public sealed class CephxCluster : IAsyncLifetime, IDisposable
{
    private PrivateCephCluster? _own;

    public CephCluster Cluster => _own?.Cluster ?? throw new InvalidOperationException("the cluster is not started");

    /// <summary>The client allowed RBD images in the cluster's pool, and its keyring.</summary>
    public (string Id, string Keyring) User => (Cluster.Setting("STRATA_RBD_USER"), Cluster.Setting("STRATA_RBD_KEYRING"));

    /// <summary>An image of <paramref name="pool"/> (the cluster's own by default) as QEMU spells it with a cephx user: rbd:POOL/IMAGE:conf=…:id=…:keyring=….</summary>
    public string Locator(string image, string? keyring = null, string? id = null, string? pool = null) =>
        $"rbd:{pool ?? Cluster.Pool}/{image}:conf={Cluster.Conf}:id={id ?? User.Id}:keyring={keyring ?? User.Keyring}";

    public async Task InitializeAsync() => _own = await PrivateCephCluster.StartAsync(cephx: true);

    public Task DisposeAsync()
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _own?.Dispose();
        _own = null;
    }
}
