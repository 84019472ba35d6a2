namespace Strata.Formats.Rbd;

/// <summary>
/// The rbd driver's open cluster connections, by configuration (<see cref="RbdLocation.ClusterKey"/>).
/// Lives in the driver instance, not in a static: a registry built for a test has its own.
/// </summary>
internal sealed class RadosClusters
{
    // Protects _open and every connection's References. Connecting happens under it too, so two
    // first opens of one cluster make one connection; other clusters wait meanwhile, which is rare.
    private readonly Lock _lock = new();
    private readonly Dictionary<string, RadosCluster> _open = new(StringComparer.Ordinal);

    /// <summary>
    /// The connection for <paramref name="location"/>'s cluster with librbd's cache on or off
    /// (<see cref="RadosCluster.Connect"/>), connecting on first use; blocks. librbd reads its cache
    /// settings from the connection, so cache=none and cache=writeback opens of one cluster use two.
    /// </summary>
    public RadosCluster Acquire(RbdLocation location, bool cache)
    {
        string key = location.ClusterKey + (cache ? "\ncache" : "\nno-cache");
        lock (_lock)
        {
            if (!_open.TryGetValue(key, out var cluster))
            {
                cluster = RadosCluster.Connect(this, key, location, cache);
                _open.Add(key, cluster);
                RbdHeapTrim.Retain();
            }

            cluster.References++;
            return cluster;
        }
    }

    public void Release(RadosCluster cluster)
    {
        lock (_lock)
        {
            if (--cluster.References > 0)
            {
                return;
            }

            _open.Remove(cluster.Key);
        }

        RbdNative.RadosShutdown(cluster.Handle);
        RbdHeapTrim.Release();
    }
}
