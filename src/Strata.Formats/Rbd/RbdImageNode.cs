using Strata.Block;
using Strata.Formats.Raw;

namespace Strata.Formats.Rbd;

/// <summary>
/// An RBD image as a disk, through librbd (the counterpart of QEMU's block/rbd.c): the raw format
/// and the protocol layer a qcow2 image stored in RBD sits on. Reads, writes, discards, zeroing and
/// flushes are librbd's asynchronous requests (<see cref="RbdCompletion"/>); block status asks
/// librbd's object map (rbd_diff_iterate2).
/// </summary>
/// <remarks>
/// Locking (DESIGN.md rule 6): a writer holds librbd's exclusive lock, taken explicitly
/// (rbd_lock_acquire) when the node is given write permission. An explicitly taken lock is never
/// handed over when another client asks for it, so a second writer, Strata or QEMU, is refused
/// while this one lives; giving write permission up releases it. Read-only opens (snapshots,
/// backing images, <c>-U</c>) take none. See docs/rbd.md for the comparison with QEMU, which
/// leaves the lock to librbd's cooperative policy.
/// </remarks>
public sealed partial class RbdImageNode : IBlockNode
{
    private readonly RadosCluster _cluster;
    private readonly IntPtr _ioctx;
    private readonly IntPtr _image;
    private readonly RbdCompletionPool _completions = new();
    private readonly bool _fastDiff;

    // With librbd's cache on, a failed write-back is reported once, at the next flush (FlushFailureLatch).
    private readonly FlushFailureLatch _flushes;
    private long _size;

    // Protects _locked: whether this open holds the image's exclusive lock. Changed by
    // SetPermissions, which the contract never runs concurrently with itself, and by the close.
    private readonly Lock _lockGate = new();
    private bool _locked;

    // Set once this open has given its lock up: librbd flushed every write at the release and lets
    // this open write no more (an explicitly taken lock turns librbd's automatic locking off), so a
    // later flush has nothing to do, and librbd would refuse it for want of the lock.
    private volatile bool _lockGivenUp;

    private RbdImageNode(string name, RbdLocation location, RadosCluster cluster, IntPtr ioctx, IntPtr image, bool readOnly)
    {
        FileName = name;
        Location = location;
        _cluster = cluster;
        _ioctx = ioctx;
        _image = image;
        _flushes = new FlushFailureLatch(name);
        RbdErrors.ThrowIfFailed($"Could not read the size of '{name}'", RbdNative.GetSize(image, out ulong size));
        _size = (long)size;
        RbdErrors.ThrowIfFailed($"Could not read the features of '{name}'", RbdNative.GetFeatures(image, out ulong features));
        Features = features;
        _fastDiff = (features & RbdNative.FeatureFastDiff) != 0;
        Capabilities = (readOnly ? NodeCapabilities.ReadOnly : NodeCapabilities.Resize) | NodeCapabilities.Fua
            | NodeCapabilities.Discard | NodeCapabilities.WriteZeroes | NodeCapabilities.MultiConnection;
    }

    public string DriverName => RawFormatDriver.FormatName;

    /// <summary>The locator's text, <c>rbd:POOL/IMAGE…</c>: reopening the node opens it again.</summary>
    public string? FileName { get; }

    public long Size => Volatile.Read(ref _size);

    public NodeCapabilities Capabilities { get; }

    /// <summary>librbd takes any byte range; 4 KiB keeps padding writes off the common path.</summary>
    public NodeLimits Limits { get; } = NodeLimits.Default;

    public IBlockNode? Backing => null;

    /// <summary>The image's feature bits (rbd/features.h).</summary>
    public ulong Features { get; }

    /// <summary>
    /// Whether librbd's client cache serves this open (cache=writeback; off for cache=none). With it,
    /// librbd's default write-around policy acknowledges writes once sent, after the first flush,
    /// and a flush waits for all of them (docs/rbd.md, "Cache modes").
    /// </summary>
    public bool ClientCache => _cluster.ClientCache;

    /// <summary>Whether this open holds the image's exclusive lock now.</summary>
    public bool HoldsLock
    {
        get
        {
            lock (_lockGate)
            {
                return _locked;
            }
        }
    }

    internal RbdLocation Location { get; }

    private bool IsReadOnly => (Capabilities & NodeCapabilities.ReadOnly) != 0;

    /// <summary>
    /// Opens the image on <paramref name="cluster"/> (whose reference passes to the node, also when
    /// the open fails); blocks for the cluster. A snapshot is always read-only.
    /// </summary>
    internal static RbdImageNode Open(string name, RbdLocation location, RadosCluster cluster, bool readOnly)
    {
        IntPtr ioctx = IntPtr.Zero;
        IntPtr image = IntPtr.Zero;
        try
        {
            ioctx = cluster.OpenPool(location);
            readOnly |= location.Snapshot is not null;
            int opened = readOnly
                ? RbdNative.OpenReadOnly(ioctx, location.Image, out image, location.Snapshot)
                : RbdNative.Open(ioctx, location.Image, out image, location.Snapshot);
            if (opened == RbdErrors.NotFound)
            {
                throw BlockException.Invalid($"Could not open '{name}': no image '{location.Image}'{(location.Snapshot is null ? "" : $" with a snapshot '{location.Snapshot}'")} in pool '{location.Pool}'");
            }

            RbdErrors.ThrowIfFailed($"Could not open '{name}'", opened);
            return new RbdImageNode(name, location, cluster, ioctx, image, readOnly);
        }
        catch
        {
            if (image != IntPtr.Zero)
            {
                _ = RbdNative.Close(image);
            }

            if (ioctx != IntPtr.Zero)
            {
                RbdNative.RadosIoctxDestroy(ioctx);
            }

            cluster.Release();
            throw;
        }
    }

    /// <summary>Requests whose success was delivered on librbd's thread (<see cref="InlineCompletion"/>): for tests.</summary>
    internal long CompletedInline => _completions.CompletedInline;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return ValueTask.CompletedTask;
        }

        if (InlineCompletion.IsRunning)
        {
            return InlineCompletion.ElsewhereAsync((Node: this, offset, buffer, cancellationToken), static r => r.Node.ReadAsync(r.offset, r.buffer, r.cancellationToken));
        }

        return StartRead(offset, buffer).Checked;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None,
        CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            return ValueTask.FromException(BlockException.ReadOnly($"'{FileName}' is open read-only"));
        }

        if (InlineCompletion.IsRunning)
        {
            return InlineCompletion.ElsewhereAsync((Node: this, offset, data, flags, cancellationToken), static r => r.Node.WriteAsync(r.offset, r.data, r.flags, r.cancellationToken));
        }

        if (data.IsEmpty)
        {
            return (flags & WriteFlags.Fua) != 0 ? FlushAsync(cancellationToken) : ValueTask.CompletedTask;
        }

        // A FUA write's flush is started by its continuation: that one may not run on librbd's thread.
        bool fua = (flags & WriteFlags.Fua) != 0;
        var written = StartWrite(offset, data, mayCompleteInline: !fua).Checked;
        return fua ? ThenFlushAsync(written, cancellationToken) : written;
    }

    /// <remarks>
    /// rbd_aio_write_zeroes, as QEMU does (qemu_rbd_co_pwrite_zeroes): allowed to unmap, librbd
    /// deallocates whole objects and zeroes partial ones; not allowed, the range stays allocated
    /// (thick provisioning). A librbd without it (before Octopus) gets zero bytes written instead.
    /// </remarks>
    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None,
        CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            throw BlockException.ReadOnly($"'{FileName}' is open read-only");
        }

        await InlineCompletion.Leave();
        int zeroFlags = (flags & ZeroFlags.MayUnmap) != 0 ? 0 : RbdNative.WriteZeroesThickProvision;
        long result;
        try
        {
            result = await StartWriteZeroes(offset, length, zeroFlags).Task;
        }
        catch (EntryPointNotFoundException)
        {
            result = RbdErrors.Unsupported;
        }

        if (result == RbdErrors.Unsupported)
        {
            if ((flags & ZeroFlags.NoFallback) != 0)
            {
                throw BlockException.NotSupported("fast zeroing is not supported here");
            }

            await WriteZeroBytesAsync(offset, length, cancellationToken);
        }
        else
        {
            ThrowIfFailed(result, "write zeroes", offset);
        }

        if ((flags & ZeroFlags.Fua) != 0)
        {
            await FlushAsync(cancellationToken);
        }
    }

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            return ValueTask.FromException(BlockException.ReadOnly($"'{FileName}' is open read-only"));
        }

        if (InlineCompletion.IsRunning)
        {
            return InlineCompletion.ElsewhereAsync((Node: this, offset, length, cancellationToken), static r => r.Node.DiscardAsync(r.offset, r.length, r.cancellationToken));
        }

        return StartDiscard(offset, length).Checked;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        if (IsReadOnly || _lockGivenUp)
        {
            return ValueTask.CompletedTask;
        }

        if (InlineCompletion.IsRunning)
        {
            return InlineCompletion.ElsewhereAsync((Node: this, cancellationToken), static r => r.Node.FlushAsync(r.cancellationToken));
        }

        return ClientCache ? _flushes.FlushAsync(() => StartFlush().Checked) : StartFlush().Checked;
    }

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            return ValueTask.FromException(BlockException.ReadOnly($"'{FileName}' is open read-only"));
        }

        return new ValueTask(Task.Run(() =>
        {
            RbdErrors.ThrowIfFailed($"Could not resize '{FileName}'", RbdNative.Resize(_image, (ulong)newSize));
            Volatile.Write(ref _size, newSize);
        }, cancellationToken));
    }

    public async ValueTask DisposeAsync()
    {
        await Task.Run(() =>
        {
            lock (_lockGate)
            {
                // rbd_close releases the lock too; released first, its failure cannot hide the close's.
                if (_locked)
                {
                    _ = RbdNative.LockRelease(_image);
                    _locked = false;
                }
            }

            _ = RbdNative.Close(_image);
            RbdNative.RadosIoctxDestroy(_ioctx);
            _completions.Close();
            _cluster.Release();
        });
    }

    private async ValueTask ThenFlushAsync(ValueTask written, CancellationToken cancellationToken)
    {
        await written;
        await FlushAsync(cancellationToken);
    }

    private void ThrowIfFailed(long result, string what, long offset)
    {
        if (result < 0)
        {
            throw RbdErrors.For($"Could not {what} '{FileName}' at offset {offset}", result);
        }
    }

    private async ValueTask WriteZeroBytesAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var zeroes = new byte[(int)Math.Min(length, 1 << 20)];
        for (long done = 0; done < length; done += zeroes.Length)
        {
            int chunk = (int)Math.Min(zeroes.Length, length - done);
            await WriteAsync(offset + done, zeroes.AsMemory(0, chunk), WriteFlags.None, cancellationToken);
        }
    }
}
