using Microsoft.Win32.SafeHandles;
using Strata.Block;

namespace Strata.Formats.Raw;

/// <summary>
/// A file as a disk: the raw format, and the protocol layer that qcow2 images sit on. Positional I/O
/// on one handle, sparse-aware block status (SEEK_DATA/SEEK_HOLE), discard and zeroing by punching
/// holes.
/// </summary>
/// <remarks>
/// The file is opened by open(2) itself, with exactly the flags needed (.NET's own open drops
/// O_DIRECT): O_CLOEXEC always, O_DIRECT for cache=none, O_NOFOLLOW and, for files that must be new,
/// O_EXCL when creating. Through the page cache (the default) reads and writes are issued
/// synchronously on the calling thread: a pread costs a few microseconds, less than handing it to
/// another thread. With cache=none they go through <see cref="DirectIo"/>, which aligns them. Flush
/// is the one slow call and runs on the thread pool.
/// </remarks>
public sealed class RawFileNode : IBlockNode, IAllocatedSize
{
    private readonly SafeFileHandle _handle;

    /// <summary>Set when the file is open with O_DIRECT (cache=none); null on the page-cache path.</summary>
    private readonly DirectIo? _direct;
    private readonly ImageLockBytes _locks;

    // Through the page cache a failed fdatasync may have dropped writes for good (FlushFailureLatch).
    private readonly FlushFailureLatch _flushes;
    private long _size;
    private bool _holesSupported = true;

    // The last run of data SEEK_DATA/SEEK_HOLE found, [start, end) (empty when equal): block status
    // inside it needs no lseek. On tmpfs SEEK_HOLE walks every page up to the next hole, so without
    // this a merge or an NBD client asking about a fully written file chunk by chunk does quadratic
    // work. Writes only turn holes into data, so they leave the run true; our own punching and
    // zeroing forget it. "Data" is always a correct answer, so a run another process punched since
    // is reported conservatively, never wrongly.
    private readonly Lock _dataRunLock = new();
    private long _dataRunStart;
    private long _dataRunEnd;
    private long _dataRunGeneration;

    private RawFileNode(string path, SafeFileHandle handle, bool readOnly, DirectIo? direct)
    {
        FileName = path;
        _handle = handle;
        _direct = direct;
        Limits = new(1, Math.Max(4096, direct?.RequestAlignment ?? 1), NodeLimits.DefaultMaxTransfer);
        _locks = new ImageLockBytes(handle, path);
        _flushes = new FlushFailureLatch(path);
        _size = RandomAccess.GetLength(handle);
        Capabilities = (readOnly ? NodeCapabilities.ReadOnly : NodeCapabilities.None) | NodeCapabilities.Fua
            | NodeCapabilities.Discard | NodeCapabilities.WriteZeroes | NodeCapabilities.FastZero
            | NodeCapabilities.MultiConnection | NodeCapabilities.Resize;
    }

    public string DriverName => RawFormatDriver.FormatName;

    public string? FileName { get; }

    public long Size => Volatile.Read(ref _size);

    public NodeCapabilities Capabilities { get; }

    /// <summary>Any offset and length (direct I/O aligns internally); its alignment avoids read-modify-write.</summary>
    public NodeLimits Limits { get; }

    public IBlockNode? Backing => null;

    public bool IsReadOnly => (Capabilities & NodeCapabilities.ReadOnly) != 0;

    /// <summary>Opens an existing file. <paramref name="direct"/> bypasses the page cache (cache=none, O_DIRECT).</summary>
    public static RawFileNode Open(string path, bool readOnly = false, bool direct = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        int flags = (readOnly ? Posix.OReadOnly : Posix.OReadWrite) | (direct ? Posix.ODirect : 0);
        var handle = OpenHandle(path, flags);
        try
        {
            if (Posix.FileType(handle).Directory)
            {
                throw BlockException.Invalid($"'{path}' is a directory");
            }

            return new RawFileNode(path, handle, readOnly, direct ? DirectIo.Probe(handle, path) : null);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates a sparse file of <paramref name="size"/> bytes and opens it (through the page cache),
    /// never through a symbolic link; <paramref name="creation"/> says whether an existing regular
    /// file is emptied and reused or anything at the path is refused.
    /// </summary>
    public static RawFileNode Create(string path, long size, FileCreation creation = FileCreation.ReplaceRegularFile)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        int flags = Posix.OReadWrite | Posix.OCreate | Posix.ONoFollow | (creation == FileCreation.New ? Posix.OExclusive : 0);
        var handle = OpenHandle(path, flags);
        try
        {
            if (!Posix.FileType(handle).Regular)
            {
                throw BlockException.Invalid($"Could not create '{path}': it is not a regular file");
            }

            // Emptied only now, not by O_TRUNC at open: what the open found was checked first.
            RandomAccess.SetLength(handle, 0);
            RandomAccess.SetLength(handle, size);
            return new RawFileNode(path, handle, readOnly: false, direct: null);
        }
        catch (Exception e)
        {
            handle.Dispose();
            if (creation == FileCreation.New)
            {
                // O_EXCL succeeded, so the file is the one we just made.
                File.Delete(path);
            }

            if (e is BlockException || e is not (IOException or UnauthorizedAccessException))
            {
                throw;
            }

            throw new BlockException(BlockError.Io, $"Could not create '{path}': {e.Message}", e);
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_direct is not null)
        {
            return ReadDirectAsync(offset, buffer);
        }

        int done = 0;
        try
        {
            while (done < buffer.Length)
            {
                int n = RandomAccess.Read(_handle, buffer.Span[done..], offset + done);
                if (n == 0)
                {
                    // Past the end of the file (a qcow2 image's file may be shorter than a cluster it
                    // points into only if truncated): the rest reads as zeroes.
                    buffer.Span[done..].Clear();
                    break;
                }

                done += n;
            }
        }
        catch (IOException e) when (e is not BlockException)
        {
            return ValueTask.FromException(IoError("read", offset, e));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None,
        CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            return ValueTask.FromException(BlockException.ReadOnly($"'{FileName}' is open read-only"));
        }

        if (_direct is not null)
        {
            return WriteDirectAsync(offset, data, flags, cancellationToken);
        }

        try
        {
            RandomAccess.Write(_handle, data.Span, offset);
            GrowTo(offset + data.Length);
        }
        catch (IOException e) when (e is not BlockException)
        {
            return ValueTask.FromException(IoError("write", offset, e));
        }

        return (flags & WriteFlags.Fua) != 0 ? FlushAsync(cancellationToken) : ValueTask.CompletedTask;
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None,
        CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            throw BlockException.ReadOnly($"'{FileName}' is open read-only");
        }

        int errno;
        using (_direct is null ? null : await _direct.HoldAsync(offset, length, cancellationToken))
        {
            errno = ZeroInPlace(offset, length, flags);
        }

        ForgetDataRun();
        if (errno != 0)
        {
            if ((flags & ZeroFlags.NoFallback) != 0)
            {
                throw BlockException.NotSupported("fast zeroing is not supported here");
            }

            await WriteZeroBytesAsync(offset, length, cancellationToken);
        }
        else
        {
            GrowTo(offset + length);
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

        // Discard is advisory: a filesystem without hole punching simply keeps the data.
        int errno = Posix.Fallocate(_handle, Posix.FallocPunchHole | Posix.FallocKeepSize, offset, length);
        ForgetDataRun();
        if (errno == Posix.EOPNOTSUPP)
        {
            _holesSupported = false;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            return ValueTask.CompletedTask;
        }

        // With O_DIRECT the writes bypassed the page cache and nothing can have been dropped (as QEMU).
        return _direct is null ? _flushes.FlushAsync(() => DataSyncAsync(cancellationToken)) : DataSyncAsync(cancellationToken);
    }

    private ValueTask DataSyncAsync(CancellationToken cancellationToken) =>
        new(BlockingIoThreads.Shared.RunAsync(() => Posix.DataSync(_handle)).WaitAsync(cancellationToken));

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        long end = offset + length;
        long generation;
        lock (_dataRunLock)
        {
            if (offset >= _dataRunStart && offset < _dataRunEnd)
            {
                return ValueTask.FromResult(new BlockExtent(offset, Math.Min(_dataRunEnd, end) - offset, BlockState.Allocated | BlockState.Data, offset));
            }

            generation = _dataRunGeneration;
        }

        long data = Posix.Seek(_handle, offset, Posix.SeekData, out int errno);
        if (data < 0)
        {
            if (errno == Posix.ENXIO)
            {
                // No data at or after offset: the rest of the file is a hole.
                return ValueTask.FromResult(new BlockExtent(offset, length, BlockState.Allocated | BlockState.Zero));
            }

            // Seeking is not supported here: report everything as data, which is always correct.
            return ValueTask.FromResult(new BlockExtent(offset, length, BlockState.Allocated | BlockState.Data, offset));
        }

        if (data > offset)
        {
            return ValueTask.FromResult(new BlockExtent(offset, Math.Min(data, end) - offset, BlockState.Allocated | BlockState.Zero));
        }

        long hole = Posix.Seek(_handle, offset, Posix.SeekHole, out _);
        if (hole < 0 || hole <= offset)
        {
            hole = end;
        }
        else
        {
            lock (_dataRunLock)
            {
                // Not if a punch or zeroing ended meanwhile: the run may predate it.
                if (generation == _dataRunGeneration)
                {
                    (_dataRunStart, _dataRunEnd) = (offset, hole);
                }
            }
        }

        return ValueTask.FromResult(new BlockExtent(offset, Math.Min(hole, end) - offset, BlockState.Allocated | BlockState.Data, offset));
    }

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
        {
            return ValueTask.FromException(BlockException.ReadOnly($"'{FileName}' is open read-only"));
        }

        RandomAccess.SetLength(_handle, newSize);
        ForgetDataRun();
        Volatile.Write(ref _size, newSize);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Takes QEMU's lock bytes for <paramref name="permissions"/> on this open file (docs/locking.md).
    /// A file holds none until then; closing it drops them.
    /// </summary>
    public void SetPermissions(NodePermissions permissions, PermissionCheck check) => _locks.Apply(permissions, check);

    /// <summary>The bytes the file occupies on its filesystem (qemu-img's "disk size").</summary>
    public long AllocatedBytes()
    {
        var info = new FileInfo(FileName!);
        return FileSystemInfoExtensions.GetAllocatedBytes(info);
    }

    public ValueTask DisposeAsync()
    {
        _direct?.Dispose();
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The one place a file is opened: open(2) with <paramref name="flags"/> (O_CLOEXEC added).</summary>
    private static SafeFileHandle OpenHandle(string path, int flags)
        => Posix.Open(path, flags, out int errno) ?? throw FileOpenError.For(path, flags, errno);

    private async ValueTask ReadDirectAsync(long offset, Memory<byte> buffer)
    {
        try
        {
            await BlockingIoThreads.Shared.RunAsync(() => _direct!.Read(offset, buffer.Span));
        }
        catch (IOException e) when (e is not BlockException)
        {
            throw IoError("read", offset, e);
        }
    }

    private async ValueTask WriteDirectAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
    {
        try
        {
            await _direct!.WriteAsync(offset, data, this, cancellationToken);
            GrowTo(offset + data.Length);
        }
        catch (IOException e) when (e is not BlockException)
        {
            throw IoError("write", offset, e);
        }

        if ((flags & WriteFlags.Fua) != 0)
        {
            await FlushAsync(cancellationToken);
        }
    }

    /// <summary>fallocate zeroing (or punching, which reads as zeroes too); returns 0 or the errno.</summary>
    private int ZeroInPlace(long offset, long length, ZeroFlags flags)
    {
        int mode = (flags & ZeroFlags.MayUnmap) != 0
            ? Posix.FallocPunchHole | Posix.FallocKeepSize
            : Posix.FallocZeroRange | (offset + length <= Size ? Posix.FallocKeepSize : 0);
        int errno = _holesSupported ? Posix.Fallocate(_handle, mode, offset, length) : Posix.EOPNOTSUPP;
        if (errno == Posix.EOPNOTSUPP && (mode & Posix.FallocPunchHole) == 0)
        {
            // Some filesystems punch holes but cannot zero a range in place: a hole reads as zeroes too.
            errno = Posix.Fallocate(_handle, Posix.FallocPunchHole | Posix.FallocKeepSize, offset, length);
        }

        return errno;
    }

    private async ValueTask WriteZeroBytesAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var zeroes = new byte[(int)Math.Min(length, 1 << 20)];
        for (long done = 0; done < length; done += zeroes.Length)
        {
            int n = (int)Math.Min(zeroes.Length, length - done);
            await WriteAsync(offset + done, zeroes.AsMemory(0, n), WriteFlags.None, cancellationToken);
        }
    }

    /// <summary>After anything that may have turned data into a hole (called once it is done).</summary>
    private void ForgetDataRun()
    {
        lock (_dataRunLock)
        {
            _dataRunGeneration++;
            (_dataRunStart, _dataRunEnd) = (0, 0);
        }
    }

    private void GrowTo(long end)
    {
        long current;
        while (end > (current = Volatile.Read(ref _size)))
        {
            if (Interlocked.CompareExchange(ref _size, end, current) == current)
            {
                break;
            }
        }
    }

    private BlockException IoError(string what, long offset, IOException e)
    {
        var kind = e.HResult == Posix.ENOSPC || e.Message.Contains("space", StringComparison.OrdinalIgnoreCase) ? BlockError.NoSpace : BlockError.Io;
        return new BlockException(kind, $"{what} at offset {offset} of '{FileName}' failed: {e.Message}", e);
    }
}
