using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats.Rbd;

/// <summary>
/// The "rbd" protocol: images in a Ceph pool through librbd (<see cref="RbdImageNode"/>), reached by
/// QEMU's spelling <c>rbd:POOL/[NAMESPACE/]IMAGE[@SNAP][:conf=PATH][:id=USER][:KEY=VALUE…]</c>
/// (<see cref="RbdLocation"/>). Images of one cluster configuration share one connection.
/// </summary>
/// <remarks>
/// The cache mode maps to librbd's client cache as in QEMU: cache=writeback (the default) opens with
/// rbd_cache on, cache=none (<see cref="ProtocolOpenOptions.Direct"/>) with it off; docs/rbd.md.
/// librbd's calls that open, create and remove are synchronous and wait for the cluster, so they
/// run on the thread pool. librbd itself is loaded on first use: without it only rbd: images fail,
/// with one line naming the package.
/// </remarks>
public sealed class RbdProtocolDriver : IProtocolDriver
{
    public const string ProtocolName = "rbd";

    private readonly RadosClusters _clusters = new();

    public string Name => ProtocolName;

    public ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ProtocolOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        ArgumentNullException.ThrowIfNull(options);
        var location = RbdLocation.Parse(locator.Target);
        return RunAsync<IBlockNode>(() => RbdImageNode.Open(locator.Text, location, _clusters.Acquire(location, cache: !options.Direct), options.ReadOnly), cancellationToken);
    }

    /// <remarks>
    /// rbd_create4 with no options, so the cluster's defaults (rbd_default_features: layering,
    /// exclusive-lock, object-map, fast-diff, deep-flatten) apply, as with <c>rbd create</c> and
    /// qemu-img. An image to reuse is removed and made again: that empties it, and librbd refuses
    /// while another client has it open or it has snapshots, which is the right answer then. The new
    /// image is opened holding its exclusive lock.
    /// </remarks>
    public ValueTask<IBlockNode> CreateAsync(ImageLocator locator, long size, bool mustBeNew, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        var location = RbdLocation.Parse(locator.Target);
        if (location.Snapshot is not null)
        {
            throw BlockException.Invalid($"Could not create '{locator}': a snapshot is made with 'rbd snap create', not written");
        }

        return RunAsync<IBlockNode>(() =>
        {
            var cluster = _clusters.Acquire(location, cache: true);
            try
            {
                Create(cluster, location, locator.Text, size, mustBeNew);
            }
            catch
            {
                cluster.Release();
                throw;
            }

            var node = RbdImageNode.Open(locator.Text, location, cluster, readOnly: false);
            try
            {
                node.Acquire();
                return node;
            }
            catch
            {
                node.DisposeAsync().AsTask().GetAwaiter().GetResult();
                throw;
            }
        }, cancellationToken);
    }

    public async ValueTask DeleteAsync(ImageLocator locator, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        var location = RbdLocation.Parse(locator.Target);
        await RunAsync(() =>
        {
            WithPool(location, ioctx => RbdErrors.ThrowIfFailed($"Could not remove '{locator}'", RbdNative.Remove(ioctx, location.Image)));
            return true;
        }, cancellationToken);
    }

    private static void Create(RadosCluster cluster, RbdLocation location, string name, long size, bool mustBeNew)
    {
        IntPtr ioctx = cluster.OpenPool(location);
        try
        {
            RbdNative.ImageOptionsCreate(out var options);
            try
            {
                int created = RbdNative.Create4(ioctx, location.Image, (ulong)size, options);
                if (created == RbdErrors.Exists && !mustBeNew)
                {
                    RbdErrors.ThrowIfFailed($"Could not replace '{name}'", RbdNative.Remove(ioctx, location.Image));
                    created = RbdNative.Create4(ioctx, location.Image, (ulong)size, options);
                }

                if (created == RbdErrors.Exists)
                {
                    throw BlockException.Invalid($"Could not create '{name}': it already exists");
                }

                RbdErrors.ThrowIfFailed($"Could not create '{name}'", created);
            }
            finally
            {
                RbdNative.ImageOptionsDestroy(options);
            }
        }
        finally
        {
            RbdNative.RadosIoctxDestroy(ioctx);
        }
    }

    private void WithPool(RbdLocation location, Action<IntPtr> action)
    {
        var cluster = _clusters.Acquire(location, cache: true);
        try
        {
            IntPtr ioctx = cluster.OpenPool(location);
            try
            {
                action(ioctx);
            }
            finally
            {
                RbdNative.RadosIoctxDestroy(ioctx);
            }
        }
        finally
        {
            cluster.Release();
        }
    }

    /// <summary>Runs a blocking librbd call on the thread pool; a missing librbd becomes its one line.</summary>
    private static async ValueTask<T> RunAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        try
        {
            return await Task.Run(work, cancellationToken);
        }
        catch (DllNotFoundException e)
        {
            throw RbdErrors.LibraryMissing(e);
        }
    }
}
