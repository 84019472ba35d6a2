namespace Strata.Formats.Rbd;

/// <summary>
/// One connection to a Ceph cluster (a rados_t), shared by every image opened with the same
/// configuration and user: connecting costs a monitor round trip and a map download, and librbd
/// images hold their own I/O contexts on it. Counted: the last image to let go shuts it down.
/// </summary>
internal sealed class RadosCluster
{
    private readonly RadosClusters _owner;

    private RadosCluster(RadosClusters owner, string key, IntPtr handle)
    {
        _owner = owner;
        Key = key;
        Handle = handle;
        ClientCache = ReadOption("rbd_cache") == "true";
    }

    public string Key { get; }

    /// <summary>The rados_t; valid while <see cref="References"/> is positive.</summary>
    public IntPtr Handle { get; }

    /// <summary>Whether librbd's client cache is on for images opened on this connection (rbd_cache as librados holds it).</summary>
    public bool ClientCache { get; }

    /// <summary>How many users hold this connection; changed only under the owner's lock.</summary>
    public int References { get; set; }

    /// <summary>
    /// Connects as QEMU's rbd driver does (qemu_rbd_connect): the user's configuration file (or
    /// librados' default search), librados' own stderr lines off (Strata's errors name the image),
    /// then each option, then librbd's cache from the drive's cache mode,
    /// then rados_connect. Blocks for the monitor.
    /// </summary>
    /// <remarks>
    /// <paramref name="cache"/> is QEMU's <c>!(flags &amp; BDRV_O_NOCACHE)</c>: cache=writeback (the
    /// default) turns rbd_cache on, cache=none (cache.direct=on) off. Set last, it overrides the
    /// configuration file and the locator's options, as in QEMU. The cache's other settings
    /// (rbd_cache_policy, rbd_cache_max_dirty, rbd_cache_writethrough_until_flush) come from those.
    /// </remarks>
    public static RadosCluster Connect(RadosClusters owner, string key, RbdLocation location, bool cache)
    {
        string user = "client." + (location.User ?? "admin");
        RbdErrors.ThrowIfFailed($"Could not start a Ceph client for 'rbd:{location.Name}'", RbdNative.RadosCreate2(out var handle, "ceph", user, 0));
        try
        {
            int read = RbdNative.RadosConfReadFile(handle, location.Conf);
            if (read < 0 && location.Conf is not null)
            {
                throw RbdErrors.For($"Could not read the Ceph configuration '{location.Conf}' for 'rbd:{location.Name}'", read);
            }

            // librados prints its own errors on stderr when the configuration says so (a timestamped
            // line per failure, before Strata's one-line error that names the image). Strata reports
            // every failure itself, so those lines are off unless the locator turns them on again
            // (:err_to_stderr=true); a configured log file still gets them.
            foreach (string quiet in (ReadOnlySpan<string>)["err_to_stderr", "log_to_stderr"])
            {
                RbdErrors.ThrowIfFailed($"Could not set Ceph option '{quiet}' for 'rbd:{location.Name}'", RbdNative.RadosConfSet(handle, quiet, "false"));
            }

            foreach (var (name, value) in location.Options)
            {
                RbdErrors.ThrowIfFailed($"Could not set Ceph option '{name}' to '{value}' for 'rbd:{location.Name}'", RbdNative.RadosConfSet(handle, name, value));
            }

            RbdErrors.ThrowIfFailed($"Could not set Ceph option 'rbd_cache' for 'rbd:{location.Name}'",
                RbdNative.RadosConfSet(handle, "rbd_cache", cache ? "true" : "false"));
            RbdErrors.ThrowIfFailed($"Could not connect to the Ceph cluster of 'rbd:{location.Name}'", RbdNative.RadosConnect(handle));
            return new RadosCluster(owner, key, handle);
        }
        catch
        {
            RbdNative.RadosShutdown(handle);
            throw;
        }
    }

    /// <summary>An I/O context on <paramref name="location"/>'s pool and namespace; the caller destroys it.</summary>
    public IntPtr OpenPool(RbdLocation location)
    {
        RbdErrors.ThrowIfFailed($"Could not open pool '{location.Pool}' for 'rbd:{location.Name}'",
            RbdNative.RadosIoctxCreate(Handle, location.Pool, out var ioctx));
        if (location.Namespace is not null)
        {
            RbdNative.RadosIoctxSetNamespace(ioctx, location.Namespace);
        }

        return ioctx;
    }

    /// <summary>A configuration option's value as librados holds it; null when librados has no such option.</summary>
    public unsafe string? ReadOption(string name)
    {
        Span<byte> value = stackalloc byte[256];
        fixed (byte* buffer = value)
        {
            if (RbdNative.RadosConfGet(Handle, name, buffer, (nuint)value.Length) < 0)
            {
                return null;
            }
        }

        int end = value.IndexOf((byte)0);
        return System.Text.Encoding.UTF8.GetString(end < 0 ? value : value[..end]);
    }

    /// <summary>Gives back one reference (<see cref="RadosClusters.Acquire"/>).</summary>
    public void Release() => _owner.Release(this);
}
