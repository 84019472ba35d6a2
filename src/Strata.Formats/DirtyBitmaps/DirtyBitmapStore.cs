using System.Security.Cryptography;
using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// A dirty_bitmap file as the store of one drive bitmap (<see cref="IBitmapStore"/>,
/// docs/formats/dirty-bitmap.md), crash-safe: after a crash at any point the file loads as a
/// superset of every write that reached the disk.
/// </summary>
/// <remarks>
/// How each call keeps that true:
/// <list type="bullet">
/// <item>Begin: a stale intent map is zeroed, then an Active header copy is written and flushed.
/// From then on the file is Active until a save, and loading it means recovery.</item>
/// <item>Before a write: <see cref="IntentMap"/> makes the write's regions durable first.</item>
/// <item>Checkpoint and save: the bits are written and flushed before anything forgets an intent.
/// A torn bit area is harmless: each word is the old one or the new one, and what the new one has
/// beyond the old came from writes whose intents are still durable. A save then writes the header
/// copy of the next generation (Consistent or Frozen, with the bits' SHA-256) into the other slot
/// and flushes; torn, the reader takes the previous copy, still Active.</item>
/// </list>
/// The file's node is given with its lock already taken (<see cref="DirtyBitmapFiles"/>), and owned:
/// disposing the store closes it. Calls other than <see cref="BeforeWriteAsync"/> come one at a time
/// (the drive's order, <see cref="IBitmapStore"/>), so <see cref="_header"/> needs no lock.
/// </remarks>
public sealed class DirtyBitmapStore : IBitmapStore
{
    private readonly IBlockNode _file;
    private readonly Func<ValueTask>? _delete;
    private readonly IntentMap _intents;
    private DirtyBitmapHeader _header;

    private DirtyBitmapStore(IBlockNode file, string description, DirtyBitmapHeader header, Func<ValueTask>? delete)
    {
        _file = file;
        Description = description;
        _header = header;
        _delete = delete;
        _intents = new IntentMap(header.DiskSize, header.IntentGranularityBits, PersistIntentsAsync);
    }

    public string Description { get; }

    public long Granularity => _header.Granularity;

    public long DiskSize => _header.DiskSize;

    /// <summary>Bytes of disk per intent region.</summary>
    public long IntentGranularity => _header.IntentGranularity;

    /// <summary>
    /// Opens the file on <paramref name="file"/> (owned from the call: closed on failure);
    /// <paramref name="delete"/> removes it for <see cref="RemoveAsync"/>.
    /// </summary>
    public static async ValueTask<DirtyBitmapStore> OpenAsync(IBlockNode file, string description, Func<ValueTask>? delete = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(description);
        try
        {
            var header = await DirtyBitmapFile.ReadHeaderAsync(file, description, cancellationToken);
            return new DirtyBitmapStore(file, description, header, delete);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }
    }

    /// <summary>Writes a new, empty, consistent file on <paramref name="file"/> (which reads as zeroes) and opens it.</summary>
    /// <param name="intentGranularity">The intent region size; null: the default (docs/formats/dirty-bitmap.md).</param>
    public static async ValueTask<DirtyBitmapStore> CreateAsync(IBlockNode file, string description, long diskSize, long granularity,
        long? intentGranularity = null, Func<ValueTask>? delete = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        try
        {
            await DirtyBitmapFile.FormatAsync(file, DirtyBitmapHeader.ForNew(diskSize, granularity, intentGranularity), cancellationToken);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }

        return await OpenAsync(file, description, delete, cancellationToken);
    }

    public ValueTask<BitmapLoadResult> LoadAsync(DirtyBitmap into, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(into);
        return DirtyBitmapFile.LoadAsync(_file, _header, into, cancellationToken);
    }

    public ValueTask BeginTrackingAsync(CancellationToken cancellationToken = default) => BeginTrackingAsync(null, cancellationToken);

    /// <summary>
    /// Begins tracking; the lineage (docs/formats/dirty-bitmap.md, "Lineage") goes on only when the
    /// drive vouches (<paramref name="quiet"/>) that it has served nothing yet, and either a crash
    /// left the file Active (the trust: nothing but a tracker writes an image while its daemon is
    /// down) or the image files are exactly as the last close recorded them. Otherwise a new one begins.
    /// </summary>
    public async ValueTask BeginTrackingAsync(QuietImage? quiet, CancellationToken cancellationToken = default)
    {
        var start = LineageBreak(quiet);
        if (_header.State == DirtyBitmapFileState.Active)
        {
            // Left active by a tracker that died (or by us): its intents are not covered by the
            // stored bits yet, so they stay, and count as durable from the start.
            _intents.Reset();
            _intents.Adopt(await DirtyBitmapFile.ReadWordsAsync(_file, _header.IntentOffset, _header.IntentLength, cancellationToken));
            if (start is { } resumed)
            {
                await WriteHeaderAsync(_header with { Lineage = DirtyBitmapHeader.NewLineage(), LineageStart = resumed }, cancellationToken);
            }

            return;
        }

        _intents.Reset();
        await DirtyBitmapFile.WriteWordsAsync(_file, _header.IntentOffset, new ulong[_header.IntentLength / sizeof(ulong)], null, cancellationToken);
        var active = _header with
        {
            State = DirtyBitmapFileState.Active, BitsSha256 = new byte[SHA256.HashSizeInBytes], Image = quiet is null ? null : ImageFileStamp.Capture(quiet.Files),
        };
        await WriteHeaderAsync(start is { } renewed ? active with { Lineage = DirtyBitmapHeader.NewLineage(), LineageStart = renewed } : active, cancellationToken);
    }

    /// <summary>Clearing: a new lineage, durably, before the bits lose anything (the image record stays: it is about the image).</summary>
    public async ValueTask ClearedAsync(CancellationToken cancellationToken = default) =>
        await WriteHeaderAsync(_header with { Lineage = DirtyBitmapHeader.NewLineage(), LineageStart = DirtyBitmapLineageStart.Cleared }, cancellationToken);

    public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken = default)
        => _intents.BeforeWriteAsync(offset, length, cancellationToken);

    public ValueTask SaveAsync(DirtyBitmap bits, BitmapStoreState state, CancellationToken cancellationToken = default) =>
        SaveAsync(bits, state.ToFileState(), null, cancellationToken);

    /// <summary>The close's save: the image files' stamps go into the header with the bits' state (none when a file cannot be stamped).</summary>
    public ValueTask SaveAtCloseAsync(DirtyBitmap bits, QuietImage? quiet, CancellationToken cancellationToken = default) =>
        SaveAsync(bits, DirtyBitmapFileState.Consistent, quiet is null ? null : ImageFileStamp.Capture(quiet.Files), cancellationToken);

    public async ValueTask CheckpointAsync(DirtyBitmap bits, CancellationToken cancellationToken = default)
    {
        if (_header.State != DirtyBitmapFileState.Active)
        {
            throw new InvalidOperationException($"{Description}: a checkpoint needs tracking to have begun");
        }

        await WriteBitsAsync(bits, cancellationToken);
        // The bits now cover every intent: forget them. Zeroes that do not reach the disk before a
        // crash only make the recovered bitmap coarser.
        _intents.Reset();
        await DirtyBitmapFile.WriteWordsAsync(_file, _header.IntentOffset, new ulong[_header.IntentLength / sizeof(ulong)], null, cancellationToken);
    }

    public async ValueTask RemoveAsync(CancellationToken cancellationToken = default)
    {
        if (_delete is not null)
        {
            await _delete();
        }
    }

    public ValueTask DisposeAsync() => _file.DisposeAsync();

    /// <summary>Writes the bits and flushes them; returns their SHA-256.</summary>
    private async ValueTask<byte[]> WriteBitsAsync(DirtyBitmap bits, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(bits);
        if (bits.Granularity != Granularity || bits.DiskSize != DiskSize)
        {
            throw BlockException.Invalid($"{Description}: the bitmap ({bits.DiskSize} bytes at {bits.Granularity}) does not match the file ({DiskSize} bytes at {Granularity})");
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await DirtyBitmapFile.WriteWordsAsync(_file, _header.BitsOffset, bits.CopyWords(), hash, cancellationToken);
        await _file.FlushAsync(cancellationToken);
        return hash.GetHashAndReset();
    }

    private async ValueTask SaveAsync(DirtyBitmap bits, DirtyBitmapFileState state, IReadOnlyList<ImageFileStamp>? image, CancellationToken cancellationToken)
    {
        byte[] sha = await WriteBitsAsync(bits, cancellationToken);
        await WriteHeaderAsync(_header with { State = state, BitsSha256 = sha, Image = image }, cancellationToken);
        _intents.Reset();
    }

    /// <summary>
    /// Null when tracking may go on in the file's lineage, else why a new one begins: a file without
    /// one, a drive that cannot vouch it served nothing yet, other image files than those recorded,
    /// or, after a close, files that changed since.
    /// </summary>
    private DirtyBitmapLineageStart? LineageBreak(QuietImage? quiet)
    {
        if (!_header.HasLineage)
        {
            return DirtyBitmapLineageStart.None;
        }

        if (quiet is null)
        {
            return _header switch
            {
                { State: DirtyBitmapFileState.Active } => DirtyBitmapLineageStart.ResumedLate,
                { Generation: 1, LineageStart: DirtyBitmapLineageStart.Created } => DirtyBitmapLineageStart.Created,
                _ => DirtyBitmapLineageStart.Unvouched,
            };
        }

        return _header switch
        {
            { Image: { } image } when !ImageFileStamp.SameFiles(image, quiet.Files) => DirtyBitmapLineageStart.ImageChanged,
            { State: DirtyBitmapFileState.Active } => null,
            // A file never tracked yet (as created) gets a fresh id all the same, still said to be new.
            { Image: null, Generation: 1, LineageStart: DirtyBitmapLineageStart.Created } => DirtyBitmapLineageStart.Created,
            { Image: null } => DirtyBitmapLineageStart.Unvouched,
            { Image: { } closed } when ImageFileStamp.FirstChange(closed) is null => null,
            _ => DirtyBitmapLineageStart.ImageChanged,
        };
    }

    /// <summary>Writes <paramref name="next"/> as the next generation's header copy, durably, and makes it the current one.</summary>
    private async ValueTask WriteHeaderAsync(DirtyBitmapHeader next, CancellationToken cancellationToken)
    {
        next = next with { Generation = _header.Generation + 1 };
        await DirtyBitmapFile.WriteHeaderAsync(_file, next, cancellationToken);
        _header = next;
    }

    private async ValueTask PersistIntentsAsync(ulong[] words, CancellationToken cancellationToken)
    {
        await DirtyBitmapFile.WriteWordsAsync(_file, _header.IntentOffset, words, null, cancellationToken);
        await _file.FlushAsync(cancellationToken);
    }
}
