using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Formats.Qcow2;

/// <summary>
/// Persistent dirty bitmaps in the image (qcow2.txt, "Bitmaps extension" and "Bitmaps"), with
/// QEMU's semantics (block/qcow2-bitmap.c): a bitmap being tracked is marked in_use on disk and is
/// inconsistent if found so at open; saving clears the flag.
/// </summary>
/// <remarks>
/// Every change is copy-on-write: new data clusters, a new table and a new directory are written
/// and their refcounts made durable, then one header write points to the new directory, then the
/// old clusters are freed. A crash leaves the old directory or the new one, and at worst leaked
/// clusters. An enabled ("auto") bitmap must record every write to the image by any program
/// (qcow2.txt, "Dirty tracking bitmaps"): until a store takes one over (<see cref="OpenBitmap"/>
/// and its load, or <see cref="CreateBitmapAsync"/>), this node tracks it itself from the first
/// write, marking it in_use then and saving it when it closes, so offline commands (commit, rebase,
/// resize) keep it true as qemu-img does.
/// </remarks>
public sealed partial class Qcow2Node : IBitmapHost
{
    // The directory as the image holds it: replaced whole, under the metadata lock, once the new
    // directory is durable; read without the lock.
    private Qcow2BitmapDirectoryEntry[] _bitmaps = [];

    // Enabled bitmaps this node tracks itself (see the remarks), by name; replaced whole under the
    // metadata lock, read without it by every write.
    private KeyValuePair<string, DirtyBitmap>[] _tracked = [];

    // Names a store took over: this node neither tracks them nor marks them at the first write.
    // Protected by the metadata lock.
    private readonly HashSet<string> _handedOver = new(StringComparer.Ordinal);

    // False while enabled bitmaps wait to be loaded and marked in_use by the first write.
    private bool _bitmapsReadyForWrites = true;

    /// <inheritdoc/>
    public IReadOnlyList<StoredBitmapInfo> StoredBitmaps
        => [.. Volatile.Read(ref _bitmaps).Select(e => new StoredBitmapInfo(e.Name, e.Granularity, e.Auto, e.InUse))];

    /// <inheritdoc/>
    public IBitmapStore OpenBitmap(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var entry = FindBitmap(name) ?? throw BlockException.Invalid($"qcow2 image '{FileName}' has no bitmap '{name}'");
        CheckUsable(entry);
        return new Qcow2BitmapStore(this, entry.Name, entry.Granularity, Size);
    }

    /// <inheritdoc/>
    public async ValueTask<IBitmapStore> CreateBitmapAsync(string name, long granularity, bool enabled, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        ArgumentNullException.ThrowIfNull(name);
        if (!IsV3)
        {
            throw BlockException.NotSupported($"qcow2 image '{FileName}' is version 2; persistent bitmaps need compat=1.1");
        }

        int nameBytes = Encoding.UTF8.GetByteCount(name);
        if (nameBytes is 0 or > Qcow2BitmapDirectoryEntry.MaxNameBytes)
        {
            throw BlockException.Invalid($"bitmap name '{name}' must be 1 to {Qcow2BitmapDirectoryEntry.MaxNameBytes} bytes long");
        }

        DirtyBitmap.ValidateGranularity(granularity);
        int bits = BitOperations.Log2((ulong)granularity);
        if (Size == 0)
        {
            throw BlockException.Invalid($"qcow2 image '{FileName}' has a size of 0; there is nothing for a bitmap to cover");
        }

        if (Qcow2BitmapDirectoryEntry.DataBytes(Size, bits) > Qcow2BitmapDirectoryEntry.MaxDataBytes)
        {
            throw BlockException.Invalid("Too much space will be occupied by the bitmap. Use larger granularity");
        }

        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            if (FindBitmap(name) is not null)
            {
                throw BlockException.Invalid($"Bitmap already exists: {name}");
            }

            if (_bitmaps.Length >= Qcow2BitmapExtension.MaxBitmaps)
            {
                throw BlockException.Invalid($"qcow2 image '{FileName}' already stores {Qcow2BitmapExtension.MaxBitmaps} bitmaps, the most it can");
            }

            var (tableOffset, tableSize) = await WriteBitmapDataLocked(new DirtyBitmap(Size, granularity), cancellationToken);
            var entry = new Qcow2BitmapDirectoryEntry
            {
                TableOffset = tableOffset,
                TableSize = tableSize,
                Flags = enabled ? Qcow2BitmapDirectoryEntry.FlagAuto : 0,
                GranularityBits = bits,
                Name = name,
            };
            _metadata.AddBitmapTable(tableOffset, tableSize * 8L);
            await ReplaceBitmapDirectoryLocked([.. _bitmaps, entry], cancellationToken);
            _handedOver.Add(name);
        }
        finally
        {
            _metadataLock.Release();
        }

        return new Qcow2BitmapStore(this, name, granularity, Size);
    }

    /// <summary>Reads the directory the header points to, bounding every entry; read-write, also checks that no table overlaps other metadata.</summary>
    private async ValueTask LoadBitmapDirectoryAsync(CancellationToken cancellationToken)
    {
        if (_header.Bitmaps is not { } extension)
        {
            return;
        }

        var directory = new byte[extension.DirectorySize];
        await _file.ReadAsync(extension.DirectoryOffset, directory, cancellationToken);
        var entries = Qcow2BitmapDirectoryEntry.ParseDirectory(directory, extension.Count, _clusterSize, _file.Size, _header.Size);
        if (!_readOnly)
        {
            // Writing relies on the map knowing the bitmaps' metadata; reading needs no map.
            CheckNewMetadata(extension.DirectoryOffset, extension.DirectorySize, "the bitmap directory");
            _metadata.SetBitmapDirectory(extension.DirectoryOffset, extension.DirectorySize);
            foreach (var entry in entries)
            {
                CheckNewMetadata(entry.TableOffset, entry.TableSize * 8L, $"the table of bitmap '{entry.Name}'");
                _metadata.AddBitmapTable(entry.TableOffset, entry.TableSize * 8L);
            }

            _bitmapsReadyForWrites = !entries.Any(e => e.Auto && !e.InUse);
        }

        _bitmaps = entries;
    }

    private void CheckNewMetadata(long offset, long length, string what)
    {
        var hit = _metadata.FindOverlap(offset, length, Qcow2MetadataKind.None);
        if (hit != Qcow2MetadataKind.None)
        {
            throw BlockException.Corrupt($"qcow2: {what} at 0x{offset:x} overlaps the {Qcow2MetadataMap.Describe(hit)}; the image can only be opened read-only");
        }
    }

    private Qcow2BitmapDirectoryEntry? FindBitmap(string name) => Array.Find(Volatile.Read(ref _bitmaps), e => e.Name == name);

    private Qcow2BitmapDirectoryEntry GetBitmap(string name)
        => FindBitmap(name) ?? throw BlockException.Invalid($"qcow2 image '{FileName}' has no bitmap '{name}' any more");

    private static void CheckUsable(Qcow2BitmapDirectoryEntry entry)
    {
        if (!entry.Usable)
        {
            // qcow2.txt: unknown extra data without extra_data_compatible: keep it, do not use it.
            throw BlockException.NotSupported($"bitmap '{entry.Name}' has extra data this program does not know; it cannot be used");
        }

        if (entry.Granularity > DirtyBitmap.MaxGranularity)
        {
            throw BlockException.NotSupported($"bitmap '{entry.Name}' has a granularity of {entry.Granularity} bytes; at most {DirtyBitmap.MaxGranularity} is supported");
        }
    }

    /// <summary>The store's load: the tracked bits when this node tracked the bitmap until now, else those on disk.</summary>
    internal async ValueTask<BitmapLoadResult> LoadBitmapAsync(string name, DirtyBitmap into, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            var entry = GetBitmap(name);
            CheckUsable(entry);
            if (into.Granularity != entry.Granularity || into.DiskSize != Size)
            {
                throw BlockException.Invalid($"bitmap '{name}' covers {Size} bytes at {entry.Granularity}-byte granularity, not {into.DiskSize} at {into.Granularity}");
            }

            if (!_readOnly)
            {
                _handedOver.Add(name);
            }

            int tracked = Array.FindIndex(_tracked, t => t.Key == name);
            if (tracked >= 0)
            {
                // This node tracked it since the first write: hand over its bits and stop.
                into.Load(_tracked[tracked].Value.Words);
                _tracked = [.. _tracked.Where(t => t.Key != name)];
                return new BitmapLoadResult(BitmapStoreState.Consistent, Recovered: false, Enabled: entry.Auto);
            }

            if (entry.InUse)
            {
                // Left in use by a writer that did not save it: its bits are not to be trusted (QEMU's rule).
                into.ClearAll();
                return new BitmapLoadResult(BitmapStoreState.Inconsistent, Recovered: false, Enabled: entry.Auto);
            }

            await ReadBitmapDataLocked(entry, into, cancellationToken);
            return new BitmapLoadResult(BitmapStoreState.Consistent, Recovered: false, Enabled: entry.Auto);
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    /// <summary>The store's begin-tracking: sets in_use durably (nothing to do when it is set already).</summary>
    internal ValueTask BeginBitmapTrackingAsync(string name, CancellationToken cancellationToken)
        => ChangeBitmapAsync(name, entry => entry.InUse ? ValueTask.CompletedTask
            : StoreBitmapsLocked([(entry, null, entry.Flags | Qcow2BitmapDirectoryEntry.FlagInUse)], cancellationToken), cancellationToken);

    /// <summary>The store's enable and disable: the auto flag alone, durably (nothing to do when it says so already).</summary>
    internal ValueTask SetBitmapEnabledAsync(string name, bool enabled, CancellationToken cancellationToken)
        => ChangeBitmapAsync(name, entry => entry.Auto == enabled ? ValueTask.CompletedTask
            : StoreBitmapsLocked([(entry, null, enabled ? entry.Flags | Qcow2BitmapDirectoryEntry.FlagAuto : entry.Flags & ~Qcow2BitmapDirectoryEntry.FlagAuto)], cancellationToken),
            cancellationToken);

    /// <summary>The store's save and checkpoint: new data, table and directory entry with the given flags.</summary>
    internal ValueTask SaveBitmapAsync(string name, DirtyBitmap bits, bool inUse, bool? enabled, CancellationToken cancellationToken)
        => ChangeBitmapAsync(name, entry =>
        {
            CheckUsable(entry);
            if (bits.Granularity != entry.Granularity || bits.DiskSize != Size)
            {
                throw BlockException.Invalid($"bitmap '{name}' covers {Size} bytes at {entry.Granularity}-byte granularity, not {bits.DiskSize} at {bits.Granularity}");
            }

            uint flags = entry.Flags & ~(Qcow2BitmapDirectoryEntry.FlagInUse | Qcow2BitmapDirectoryEntry.FlagAuto);
            flags |= inUse ? Qcow2BitmapDirectoryEntry.FlagInUse : 0;
            flags |= (enabled ?? entry.Auto) ? Qcow2BitmapDirectoryEntry.FlagAuto : 0;
            return StoreBitmapsLocked([(entry, bits, flags)], cancellationToken);
        }, cancellationToken);

    /// <summary>The store's remove: the entry leaves the directory, then its table and data clusters are freed.</summary>
    internal ValueTask RemoveBitmapAsync(string name, CancellationToken cancellationToken)
        => ChangeBitmapAsync(name, async entry =>
        {
            var oldData = await ReadTableForFreeLocked(entry, cancellationToken);
            _tracked = [.. _tracked.Where(t => t.Key != name)];
            await ReplaceBitmapDirectoryLocked([.. _bitmaps.Where(e => e.Name != name)], cancellationToken);
            _metadata.RemoveBitmapTable(entry.TableOffset, entry.TableSize * 8L);
            await FreeBitmapClustersLocked(entry, oldData, cancellationToken);
        }, cancellationToken);

    /// <summary>Runs a writing change of the bitmap <paramref name="name"/> under the metadata lock.</summary>
    private async ValueTask ChangeBitmapAsync(string name, Func<Qcow2BitmapDirectoryEntry, ValueTask> change, CancellationToken cancellationToken)
    {
        CheckWritable();
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            await change(GetBitmap(name));
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    /// <summary>
    /// Writes new data and tables for the changes that carry bits, then one new directory with every
    /// change's flags, then frees the replaced tables and data.
    /// </summary>
    private async ValueTask StoreBitmapsLocked(IReadOnlyList<(Qcow2BitmapDirectoryEntry Entry, DirtyBitmap? Bits, uint Flags)> changes, CancellationToken cancellationToken)
    {
        var entries = (Qcow2BitmapDirectoryEntry[])_bitmaps.Clone();
        var replaced = new List<(Qcow2BitmapDirectoryEntry Entry, long[] Data)>();
        foreach (var (entry, bits, flags) in changes)
        {
            int index = Array.FindIndex(entries, e => e.Name == entry.Name);
            var updated = entry with { Flags = flags };
            if (bits is not null)
            {
                replaced.Add((entry, await ReadTableForFreeLocked(entry, cancellationToken)));
                var (tableOffset, tableSize) = await WriteBitmapDataLocked(bits, cancellationToken);
                _metadata.AddBitmapTable(tableOffset, tableSize * 8L);
                updated = updated with { TableOffset = tableOffset, TableSize = tableSize };
            }

            entries[index] = updated;
        }

        await ReplaceBitmapDirectoryLocked(entries, cancellationToken);
        foreach (var (entry, data) in replaced)
        {
            _metadata.RemoveBitmapTable(entry.TableOffset, entry.TableSize * 8L);
            await FreeBitmapClustersLocked(entry, data, cancellationToken);
        }
    }

    /// <summary>
    /// Copy-on-write of the directory (qcow2.txt, "Bitmaps extension"): the new directory goes to
    /// fresh clusters; the refcounts of everything new become durable; one header write (flushed)
    /// switches to it and sets or clears autoclear bit 0; then the old directory is freed.
    /// </summary>
    private async ValueTask ReplaceBitmapDirectoryLocked(Qcow2BitmapDirectoryEntry[] entries, CancellationToken cancellationToken)
    {
        Qcow2BitmapExtension? extension = null;
        if (entries.Length > 0)
        {
            byte[] directory = Qcow2BitmapDirectoryEntry.SerializeDirectory(entries);
            if (directory.Length > Qcow2BitmapExtension.MaxDirectorySize)
            {
                throw BlockException.Invalid($"qcow2: the bitmap directory would be {directory.Length} bytes (at most {Qcow2BitmapExtension.MaxDirectorySize})");
            }

            int clusters = (int)((directory.Length + _clusterSize - 1L) >> _clusterBits);
            long offset = await AllocateContiguousLocked(clusters, cancellationToken);
            await WriteMetadataLocked(offset, directory, Qcow2MetadataKind.None, cancellationToken);
            extension = new Qcow2BitmapExtension(entries.Length, directory.Length, offset);
        }

        // Refcounts before the structures that reference them (docs/formats/qcow2.md).
        await WriteRefcountsLocked(cancellationToken);
        await _file.FlushAsync(cancellationToken);

        var old = _header.Bitmaps;
        ulong oldAutoclear = _header.AutoclearFeatures;
        _header.Bitmaps = extension;
        _header.BitmapsIgnored = false;
        _header.AutoclearFeatures = extension is null ? oldAutoclear & ~Qcow2Features.AutoclearBitmaps : oldAutoclear | Qcow2Features.AutoclearBitmaps;
        try
        {
            await WriteHeaderClusterLocked(cancellationToken);
        }
        catch
        {
            _header.Bitmaps = old;
            _header.AutoclearFeatures = oldAutoclear;
            throw;
        }

        Volatile.Write(ref _bitmaps, entries);
        _metadata.SetBitmapDirectory(extension?.DirectoryOffset ?? 0, extension?.DirectorySize ?? 0);
        if (old is not null)
        {
            await FreeNowLocked(old.DirectoryOffset, old.DirectorySize, cancellationToken);
        }
    }

    /// <summary>Rewrites the whole header cluster (fields, extensions, backing name) from <see cref="_header"/>, flushed on both sides.</summary>
    private async ValueTask WriteHeaderClusterLocked(CancellationToken cancellationToken)
    {
        byte[] cluster = _header.Serialize();
        await _file.FlushAsync(cancellationToken);
        await WriteMetadataLocked(0, cluster, Qcow2MetadataKind.Header, cancellationToken);
        await _file.FlushAsync(cancellationToken);
    }

    /// <summary>Writes a bitmap's data (clusters that are all zero stay unallocated: entry 0) and its table; returns the table.</summary>
    private async ValueTask<(long Offset, int Size)> WriteBitmapDataLocked(DirtyBitmap bits, CancellationToken cancellationToken)
    {
        int granularityBits = BitOperations.Log2((ulong)bits.Granularity);
        int tableSize = (int)Qcow2BitmapDirectoryEntry.TableEntries(bits.DiskSize, granularityBits, _clusterSize);
        long dataBytes = Qcow2BitmapDirectoryEntry.DataBytes(bits.DiskSize, granularityBits);
        ulong[] words = bits.CopyWords();
        var table = new ulong[tableSize];
        var cluster = new byte[_clusterSize];
        for (int i = 0; i < tableSize; i++)
        {
            long start = (long)i << _clusterBits;
            int length = (int)Math.Min(_clusterSize, dataBytes - start);
            if (!CopyBitmapBytes(words, start, cluster, length))
            {
                continue;
            }

            var (host, _) = await AllocateClustersLocked(1, cancellationToken);
            await WriteMetadataLocked(host, cluster, Qcow2MetadataKind.None, cancellationToken);
            table[i] = (ulong)host;
        }

        int tableClusters = (int)(((tableSize * 8L) + _clusterSize - 1) >> _clusterBits);
        long tableOffset = await AllocateContiguousLocked(tableClusters, cancellationToken);
        await WriteMetadataLocked(tableOffset, SerializeTable(table, tableClusters * _clusterSize), Qcow2MetadataKind.None, cancellationToken);
        return (tableOffset, tableSize);
    }

    // Copies bytes [start, start + length) of the words (little-endian, qcow2.txt "Bitmap data")
    // into the cluster, zeroing the rest; false when they are all zero.
    private static bool CopyBitmapBytes(ulong[] words, long start, byte[] cluster, int length)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw BlockException.NotSupported("qcow2 bitmaps need a little-endian host");
        }

        var source = MemoryMarshal.AsBytes(words.AsSpan()).Slice((int)start, length);
        source.CopyTo(cluster);
        cluster.AsSpan(length).Clear();
        return source.ContainsAnyExcept((byte)0);
    }

    /// <summary>Reads a bitmap's table and data into <paramref name="into"/>, checking every table entry.</summary>
    private async ValueTask ReadBitmapDataLocked(Qcow2BitmapDirectoryEntry entry, DirtyBitmap into, CancellationToken cancellationToken)
    {
        long expected = Qcow2BitmapDirectoryEntry.TableEntries(Size, entry.GranularityBits, _clusterSize);
        if (entry.TableSize != expected)
        {
            throw BlockException.Corrupt($"qcow2: bitmap '{entry.Name}' has a table of {entry.TableSize} entries; the disk needs {expected}");
        }

        // Read cluster by cluster straight into the bitmap: its data (at most MaxDataBytes, QEMU's
        // BME_MAX_PHYS_SIZE) is held once.
        var table = await ReadTableAsync(_file, entry.TableOffset, entry.TableSize, cancellationToken);
        long dataBytes = into.Words.Length * 8L;
        var cluster = new byte[_clusterSize];
        long fileSize = _file.Size;
        for (int i = 0; i < table.Length; i++)
        {
            if (Qcow2BitmapTable.Problem(table[i], _clusterSize, fileSize) is { } problem)
            {
                throw BlockException.Corrupt($"qcow2: bitmap '{entry.Name}', table entry {i}: {problem}");
            }

            long start = (long)i << _clusterBits;
            int length = (int)Math.Min(_clusterSize, dataBytes - start);
            long host = Qcow2BitmapTable.HostOffset(table[i]);
            if (host == 0)
            {
                cluster.AsSpan(0, length).Fill((table[i] & Qcow2BitmapTable.AllOnes) != 0 ? (byte)0xff : (byte)0);
            }
            else
            {
                await _file.ReadAsync(host, cluster, cancellationToken);
            }

            into.LoadBytes(start, cluster.AsSpan(0, length));
        }
    }

    /// <summary>The data clusters a table names, for freeing once it is replaced; entries that are not valid are left out (leaked, never freed).</summary>
    private async ValueTask<long[]> ReadTableForFreeLocked(Qcow2BitmapDirectoryEntry entry, CancellationToken cancellationToken)
    {
        var table = await ReadTableAsync(_file, entry.TableOffset, entry.TableSize, cancellationToken);
        long fileSize = _file.Size;
        return [.. table.Where(e => Qcow2BitmapTable.Problem(e, _clusterSize, fileSize) is null && Qcow2BitmapTable.HostOffset(e) != 0)
            .Select(Qcow2BitmapTable.HostOffset)];
    }

    private async ValueTask FreeBitmapClustersLocked(Qcow2BitmapDirectoryEntry entry, long[] data, CancellationToken cancellationToken)
    {
        foreach (long host in data)
        {
            await FreeNowLocked(host, _clusterSize, cancellationToken);
        }

        await FreeNowLocked(entry.TableOffset, entry.TableSize * 8L, cancellationToken);
    }

    /// <summary>Frees clusters no durable structure references any more; never metadata (a hostile table could name it).</summary>
    private async ValueTask FreeNowLocked(long offset, long length, CancellationToken cancellationToken)
    {
        await CheckOverlapLocked(offset, length, Qcow2MetadataKind.None, "free of bitmap clusters");
        await DecrementRefcountsLocked(offset, length, cancellationToken);
    }

    /// <summary>
    /// On every guest write, write-zeroes and discard, before it: the first one loads the enabled
    /// bitmaps no store took over and marks them in_use; each marks the range in them.
    /// </summary>
    private ValueTask TrackWriteAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (!Volatile.Read(ref _bitmapsReadyForWrites))
        {
            return PrepareAndTrackAsync(offset, length, cancellationToken);
        }

        foreach (var (_, bits) in Volatile.Read(ref _tracked))
        {
            bits.Set(offset, length);
        }

        return ValueTask.CompletedTask;
    }

    private async ValueTask PrepareAndTrackAsync(long offset, long length, CancellationToken cancellationToken)
    {
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            if (!_bitmapsReadyForWrites)
            {
                await TakeOverEnabledBitmapsLocked(cancellationToken);
            }
        }
        finally
        {
            _metadataLock.Release();
        }

        await TrackWriteAsync(offset, length, cancellationToken);
    }

    private async ValueTask TakeOverEnabledBitmapsLocked(CancellationToken cancellationToken)
    {
        var changes = new List<(Qcow2BitmapDirectoryEntry, DirtyBitmap?, uint)>();
        var tracked = new List<KeyValuePair<string, DirtyBitmap>>();
        foreach (var entry in _bitmaps.Where(e => e.Auto && !e.InUse && !_handedOver.Contains(e.Name)))
        {
            // One that cannot be tracked here is still marked in use, so it is never trusted after writes it missed.
            if (entry.Usable && entry.Granularity <= DirtyBitmap.MaxGranularity)
            {
                var bits = new DirtyBitmap(Size, entry.Granularity);
                await ReadBitmapDataLocked(entry, bits, cancellationToken);
                tracked.Add(new(entry.Name, bits));
            }

            changes.Add((entry, null, entry.Flags | Qcow2BitmapDirectoryEntry.FlagInUse));
        }

        if (changes.Count > 0)
        {
            await StoreBitmapsLocked(changes, cancellationToken);
        }

        _tracked = [.. tracked];
        Volatile.Write(ref _bitmapsReadyForWrites, true);
    }

    /// <summary>At close: saves the bitmaps this node tracked, clearing in_use.</summary>
    private async ValueTask SaveTrackedBitmapsLocked(CancellationToken cancellationToken)
    {
        if (_tracked.Length == 0)
        {
            return;
        }

        var changes = new List<(Qcow2BitmapDirectoryEntry, DirtyBitmap?, uint)>();
        foreach (var (name, bits) in _tracked)
        {
            var entry = GetBitmap(name);
            changes.Add((entry, bits, entry.Flags & ~Qcow2BitmapDirectoryEntry.FlagInUse));
        }

        await StoreBitmapsLocked(changes, cancellationToken);
        _tracked = [];
    }

    /// <summary>
    /// Grows the disk with its bitmaps: every bitmap saved correctly, and every one this node
    /// tracks, is stored again at the new size (its table must cover the disk), and the header write
    /// that switches to the new directory carries the new size, so a crash leaves the old size with
    /// the old bitmaps or the new with the new. Without bitmaps to store, only the size is written.
    /// A bitmap left in use by a writer that died, or one this program cannot hold, refuses the
    /// resize before anything changes, as qemu-img's does (block/qcow2-bitmap.c,
    /// qcow2_truncate_bitmaps_check: every bitmap must be loaded and consistent to be resized).
    /// </summary>
    private async ValueTask ResizeWithBitmapsLocked(long newSize, CancellationToken cancellationToken)
    {
        if (_handedOver.Count > 0)
        {
            throw BlockException.NotSupported($"qcow2 image '{FileName}': cannot resize while bitmap '{_handedOver.First()}' is in use");
        }

        long oldSize = Size;
        var changes = new List<(Qcow2BitmapDirectoryEntry, DirtyBitmap?, uint)>();
        var tracked = new List<KeyValuePair<string, DirtyBitmap>>();
        foreach (var entry in _bitmaps)
        {
            int index = Array.FindIndex(_tracked, t => t.Key == entry.Name);
            if (entry.InUse && index < 0)
            {
                throw BlockException.Invalid($"Bitmap '{entry.Name}' is inconsistent and cannot be used");
            }

            CheckUsable(entry);

            DirtyBitmap old;
            if (index >= 0)
            {
                old = _tracked[index].Value;
            }
            else
            {
                old = new DirtyBitmap(oldSize, entry.Granularity);
                await ReadBitmapDataLocked(entry, old, cancellationToken);
            }

            var grown = new DirtyBitmap(newSize, entry.Granularity);
            var words = new ulong[grown.Words.Length];
            old.Words.CopyTo(words);
            grown.Load(words);
            changes.Add((entry, grown, entry.Flags));
            if (index >= 0)
            {
                tracked.Add(new(entry.Name, grown));
            }
        }

        if (changes.Count == 0)
        {
            await WriteSizeLocked(newSize, cancellationToken);
            return;
        }

        _header.Size = newSize;
        try
        {
            await StoreBitmapsLocked(changes, cancellationToken);
        }
        catch
        {
            _header.Size = oldSize;
            throw;
        }

        Volatile.Write(ref _size, newSize);
        _tracked = [.. tracked];
    }
}
