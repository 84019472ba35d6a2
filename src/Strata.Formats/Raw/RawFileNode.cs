using Microsoft.Win32.SafeHandles;
using Strata.Block;

namespace Strata.Formats.Raw;

/// <summary>
/// A file as a disk: the raw format, and the protocol layer that qcow2 images sit on. Positional I/O
/// on one handle, sparse-aware block status (SEEK_DATA/SEEK_HOLE), discard and zeroing by punching
/// holes.
/// </summary>
/// <remarks>
/// Reads and writes are issued synchronously on the calling thread: against the page cache a pread
/// costs a few microseconds, less than handing it to another thread. Flush is the one slow call and
/// runs on the thread pool.
/// </remarks>
public sealed class RawFileNode : IBlockNode
{
    private readonly SafeFileHandle _handle;
    private readonly bool _direct;
    private readonly ImageLockBytes _locks;
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

    private RawFileNode(string path, SafeFileHandle handle, bool readOnly, bool direct)
    {
        FileName = path;
        _handle = handle;
        _direct = direct;
        _locks = new ImageLockBytes(handle, path);
        _size = RandomAccess.GetLength(handle);
        Capabilities = (readOnly ? NodeCapabilities.ReadOnly : NodeCapabilities.None) | NodeCapabilities.Fua
            | NodeCapabilities.Discard | NodeCapabilities.WriteZeroes | NodeCapabilities.FastZero
            | NodeCapabilities.MultiConnection | NodeCapabilities.Resize;
    }

    public string DriverName => "raw";

    public string? FileName { get; }

    public long Size => Volatile.Read(ref _size);

    public NodeCapabilities Capabilities { get; }

    public NodeLimits Limits => new(_direct ? 512 : 1, 4096, NodeLimits.DefaultMaxTransfer);

    public IBlockNode? Backing => null;

    public bool IsReadOnly => (Capabilities & NodeCapabilities.ReadOnly) != 0;

    /// <summary>Opens an existing file. <paramref name="direct"/> bypasses the page cache (cache=none).</summary>
    public static RawFileNode Open(string path, bool readOnly = false, bool direct = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            var options = direct ? (FileOptions)0x4000 /* O_DIRECT */ : FileOptions.None;
            var handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite,
                FileShare.ReadWrite | FileShare.Delete, options);
            if (Directory.Exists(path))
            {
                handle.Dispose();
                throw new BlockException(BlockError.InvalidArgument, $"'{path}' is a directory");
            }

            return new RawFileNode(path, handle, readOnly, direct);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BlockException(BlockError.InvalidArgument, $"Could not open '{path}': No such file or directory", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new BlockException(BlockError.ReadOnly, $"Could not open '{path}': Permission denied", e);
        }
        catch (IOException e) when (e is not BlockException)
        {
            throw new BlockException(BlockError.Io, $"Could not open '{path}': {e.Message}", e);
        }
    }

    /// <summary>Creates (or truncates) a sparse file of <paramref name="size"/> bytes and opens it.</summary>
    public static RawFileNode Create(string path, long size)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        try
        {
            using (var handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
            {
                RandomAccess.SetLength(handle, size);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BlockException(BlockError.Io, $"Could not create '{path}': {e.Message}", e);
        }

        return Open(path);
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
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

        int mode = (flags & ZeroFlags.MayUnmap) != 0
            ? Posix.FallocPunchHole | Posix.FallocKeepSize
            : Posix.FallocZeroRange | (offset + length <= Size ? Posix.FallocKeepSize : 0);
        int errno = _holesSupported ? Posix.Fallocate(_handle, mode, offset, length) : Posix.EOPNOTSUPP;
        if (errno == Posix.EOPNOTSUPP && (mode & Posix.FallocPunchHole) == 0)
        {
            // Some filesystems punch holes but cannot zero a range in place: a hole reads as zeroes too.
            errno = Posix.Fallocate(_handle, Posix.FallocPunchHole | Posix.FallocKeepSize, offset, length);
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

        return new ValueTask(Task.Run(() => Posix.DataSync(_handle), cancellationToken));
    }

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
        _handle.Dispose();
        return ValueTask.CompletedTask;
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
