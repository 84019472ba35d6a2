using Strata.Block.Bitmaps;
using Strata.Block.Graph;
using Strata.TestKit;

namespace Strata.Block.Tests.Graph;

/// <summary>
/// One open of a <see cref="MemoryImage"/>: a layer with a backing edge and a recorded backing file,
/// read-only or read-write, that remembers being closed (a stand-in for a qcow2 image in drive tests).
/// Requests are page-aligned (its <see cref="Limits"/> say so, and the gate enforces it). It keeps
/// bitmaps in its image as a qcow2 layer does (<see cref="IBitmapHost"/>).
/// </summary>
public sealed class MemoryImageNode(MemoryImage image, string fileName, bool readOnly, List<string>? closeLog = null) : IBackedLayer, IBackingFileRecord, IBitmapHost
{
    public MemoryImage Image { get; } = image;

    public bool IsReadOnly { get; } = readOnly;

    public bool Closed { get; private set; }

    public string DriverName => "memory-image";

    public string? FileName { get; } = fileName;

    public long Size => Image.Data.LongLength;

    public NodeCapabilities Capabilities => IsReadOnly ? NodeCapabilities.ReadOnly : NodeCapabilities.WriteZeroes | NodeCapabilities.Discard | NodeCapabilities.Fua;

    public NodeLimits Limits => new(MemoryImage.PageSize, MemoryImage.PageSize, NodeLimits.DefaultMaxTransfer);

    public BackingEdge BackingEdge { get; } = new();

    public IBlockNode? Backing => BackingEdge.Node;

    public string? BackingFileName => Image.BackingFile;

    public string? BackingFormat => Image.BackingFormat;

    /// <summary>The permissions last set on this open.</summary>
    public NodePermissions? Permissions { get; private set; }

    public IReadOnlyList<StoredBitmapInfo> StoredBitmaps
    {
        get
        {
            lock (Image.Lock)
            {
                return [.. Image.Bitmaps.Select(b => new StoredBitmapInfo(b.Name, b.Granularity, b.Enabled, b.State == BitmapStoreState.Active))];
            }
        }
    }

    public IBitmapStore OpenBitmap(string name)
    {
        lock (Image.Lock)
        {
            var file = Image.Bitmaps.Find(b => b.Name == name) ?? throw BlockException.Invalid($"'{FileName}' has no bitmap '{name}'");
            return Store(file);
        }
    }

    public ValueTask<IBitmapStore> CreateBitmapAsync(string name, long granularity, bool enabled, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        lock (Image.Lock)
        {
            if (Image.Bitmaps.Exists(b => b.Name == name))
            {
                throw BlockException.Invalid($"'{FileName}' already has a bitmap '{name}'");
            }

            var file = new MemoryBitmapFile(name, Size, granularity) { Enabled = enabled, CrashSafe = false };
            Image.Bitmaps.Add(file);
            return ValueTask.FromResult<IBitmapStore>(Store(file));
        }
    }

    private MemoryBitmapStore Store(MemoryBitmapFile file) => new(file, $"{Path.GetFileName(FileName)}, bitmap '{file.Name}'", () =>
    {
        lock (Image.Lock)
        {
            Image.Bitmaps.Remove(file);
        }
    });

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Closed, this);
        for (int done = 0; done < buffer.Length; done += MemoryImage.PageSize)
        {
            long pos = offset + done;
            bool allocated;
            lock (Image.Lock)
            {
                allocated = Image.Allocated[pos / MemoryImage.PageSize];
                if (allocated)
                {
                    Image.Data.AsSpan((int)pos, MemoryImage.PageSize).CopyTo(buffer.Span[done..]);
                }
            }

            if (!allocated)
            {
                await BackingReader.ReadAsync(Backing, pos, buffer.Slice(done, MemoryImage.PageSize), cancellationToken);
            }
        }
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        lock (Image.Lock)
        {
            data.Span.CopyTo(Image.Data.AsSpan((int)offset));
            Image.Allocated.AsSpan((int)(offset / MemoryImage.PageSize), data.Length / MemoryImage.PageSize).Fill(true);
            Image.UnflushedWrites++;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
        => WriteAsync(offset, new byte[length], WriteFlags.None, cancellationToken);

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
        => WriteZeroesAsync(offset, length, ZeroFlags.None, cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Closed, this);
        lock (Image.Lock)
        {
            Image.UnflushedWrites = 0;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        lock (Image.Lock)
        {
            long page = offset / MemoryImage.PageSize;
            bool allocated = Image.Allocated[page];
            long end = Math.Min(offset + length, (page + 1) * MemoryImage.PageSize);
            for (page++; end < offset + length && Image.Allocated[page] == allocated; page++)
            {
                end = Math.Min(offset + length, (page + 1) * MemoryImage.PageSize);
            }

            return ValueTask.FromResult(new BlockExtent(offset, end - offset, allocated ? BlockState.Allocated | BlockState.Data : BlockState.Unallocated));
        }
    }

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
        => throw BlockException.NotSupported("memory images have a fixed size");

    public ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        Image.BackingFile = backingFile;
        Image.BackingFormat = backingFormat;
        return ValueTask.CompletedTask;
    }

    public void SetPermissions(NodePermissions permissions, PermissionCheck check) => Permissions = permissions;

    public async ValueTask DisposeAsync()
    {
        if (Closed)
        {
            return;
        }

        if (!IsReadOnly)
        {
            await FlushAsync();
        }

        Closed = true;
        closeLog?.Add(FileName!);
        await BackingEdge.CloseAsync();
    }

    private void CheckWritable()
    {
        ObjectDisposedException.ThrowIf(Closed, this);
        if (IsReadOnly)
        {
            throw BlockException.ReadOnly($"'{FileName}' is open read-only");
        }
    }
}
