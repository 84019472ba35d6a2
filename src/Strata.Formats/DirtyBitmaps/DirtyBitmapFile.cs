using System.Buffers.Binary;
using System.Security.Cryptography;
using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// The I/O of a dirty_bitmap file on any node (docs/formats/dirty-bitmap.md): finding the newest
/// valid header copy, reading and writing the word areas (intent map, bits), loading with
/// recovery, and writing a new file. Shared by the tracking store and the read-only view.
/// </summary>
internal static class DirtyBitmapFile
{
    /// <summary>Word areas move in pieces of this size (below every node's transfer limit).</summary>
    private const int Piece = 1 << 20;

    /// <summary>
    /// Reads both header copies and returns the valid one with the highest generation, its fields
    /// bounded against the file's length. A torn copy (bad magic or checksum) is skipped; when no
    /// copy is valid, or the newest is out of bounds, one line says why.
    /// </summary>
    public static async ValueTask<DirtyBitmapHeader> ReadHeaderAsync(IBlockNode file, string description, CancellationToken cancellationToken = default)
    {
        long fileLength = file.Size;
        if (fileLength < DirtyBitmapHeader.Length)
        {
            throw BlockException.Corrupt($"{description}: not a dirty_bitmap file (only {fileLength} bytes)");
        }

        var slots = new byte[2 * DirtyBitmapHeader.SlotSize];
        int readable = (int)Math.Min(slots.Length, fileLength);
        await file.ReadAsync(0, slots.AsMemory(0, readable), cancellationToken);
        int secondLength = Math.Max(0, readable - DirtyBitmapHeader.SlotSize);
        var first = DirtyBitmapHeader.TryParse(slots.AsSpan(0, readable - secondLength), out string firstReason);
        var second = DirtyBitmapHeader.TryParse(slots.AsSpan(DirtyBitmapHeader.SlotSize, secondLength), out string secondReason);
        bool anyMagic = slots.AsSpan().StartsWith(DirtyBitmapHeader.Magic) || slots.AsSpan(DirtyBitmapHeader.SlotSize).StartsWith(DirtyBitmapHeader.Magic);
        var header = (first, second) switch
        {
            (null, null) when !anyMagic => throw BlockException.Invalid($"{description}: not a dirty_bitmap file (bad magic)"),
            (null, null) => throw BlockException.Corrupt($"{description}: no valid header copy (first: {firstReason}; second: {secondReason})"),
            ({ } a, null) => a,
            (null, { } b) => b,
            ({ } a, { } b) => b.Generation > a.Generation ? b : a,
        };
        try
        {
            header.Validate(fileLength);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Error, $"{description}: {e.Message}", e);
        }

        return header;
    }

    /// <summary>
    /// Fills <paramref name="into"/> from the file. Consistent or frozen: the bits, checked against
    /// their SHA-256 (a mismatch gives Inconsistent and every bit set, the only safe content).
    /// Active: the bits OR every region of the intent map (a superset of every write that reached
    /// the disk since the bits were last written), reported Recovered.
    /// </summary>
    public static async ValueTask<BitmapLoadResult> LoadAsync(IBlockNode file, DirtyBitmapHeader header, DirtyBitmap into, CancellationToken cancellationToken = default)
    {
        if (into.Granularity != header.Granularity || into.DiskSize != header.DiskSize)
        {
            throw BlockException.Invalid($"the bitmap in memory ({into.DiskSize} bytes at {into.Granularity}) does not match the file ({header.DiskSize} bytes at {header.Granularity})");
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await ReadBitsAsync(file, header.BitsOffset, header.BitsLength, into, hash, cancellationToken);
        if (header.State != DirtyBitmapFileState.Active)
        {
            if (!hash.GetHashAndReset().AsSpan().SequenceEqual(header.BitsSha256.Span))
            {
                into.SetAll();
                return new BitmapLoadResult(BitmapStoreState.Inconsistent, Recovered: false);
            }

            return new BitmapLoadResult(header.State.ToStoreState(), Recovered: false);
        }

        var intents = await ReadWordsAsync(file, header.IntentOffset, header.IntentLength, cancellationToken);
        foreach (long region in SetBits(intents))
        {
            into.Set(region * header.IntentGranularity, header.IntentGranularity);
        }

        return new BitmapLoadResult(BitmapStoreState.Active, Recovered: true);
    }

    /// <summary>
    /// Reads the bit area straight into <paramref name="into"/>'s words, one piece at a time, feeding
    /// the bytes to <paramref name="hash"/>: the bits are held once, however large (up to
    /// <see cref="DirtyBitmapHeader.MaxBitsLength"/>).
    /// </summary>
    private static async ValueTask ReadBitsAsync(IBlockNode file, long offset, long length, DirtyBitmap into, IncrementalHash hash, CancellationToken cancellationToken)
    {
        if (length != into.Words.Length * (long)sizeof(ulong))
        {
            throw BlockException.Invalid($"the bit area of {length} bytes does not fit a bitmap of {into.Words.Length} words");
        }

        var piece = new byte[(int)Math.Min(Piece, length)];
        for (long done = 0; done < length; done += piece.Length)
        {
            int n = (int)Math.Min(piece.Length, length - done);
            await file.ReadAsync(offset + done, piece.AsMemory(0, n), cancellationToken);
            hash.AppendData(piece, 0, n);
            into.LoadBytes(done, piece.AsSpan(0, n));
        }
    }

    /// <summary>Reads a word area (little-endian 64-bit words) into a new array: the intent map (the bits go straight into their bitmap, <see cref="ReadBitsAsync"/>).</summary>
    public static async ValueTask<ulong[]> ReadWordsAsync(IBlockNode file, long offset, long length, CancellationToken cancellationToken)
    {
        var words = new ulong[length / sizeof(ulong)];
        var piece = new byte[(int)Math.Min(Piece, length)];
        for (long done = 0; done < length; done += piece.Length)
        {
            int n = (int)Math.Min(piece.Length, length - done);
            await file.ReadAsync(offset + done, piece.AsMemory(0, n), cancellationToken);
            for (int i = 0; i < n; i += sizeof(ulong))
            {
                words[(done + i) / sizeof(ulong)] = BinaryPrimitives.ReadUInt64LittleEndian(piece.AsSpan(i));
            }
        }

        return words;
    }

    /// <summary>Writes a word area (not durably: the caller flushes), feeding the bytes to <paramref name="hash"/> when given.</summary>
    public static async ValueTask WriteWordsAsync(IBlockNode file, long offset, ReadOnlyMemory<ulong> words, IncrementalHash? hash, CancellationToken cancellationToken)
    {
        long length = (long)words.Length * sizeof(ulong);
        var piece = new byte[(int)Math.Min(Piece, length)];
        for (long done = 0; done < length; done += piece.Length)
        {
            int n = (int)Math.Min(piece.Length, length - done);
            var source = words.Span.Slice((int)(done / sizeof(ulong)), n / sizeof(ulong));
            for (int i = 0; i < source.Length; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(piece.AsSpan(i * sizeof(ulong)), source[i]);
            }

            hash?.AppendData(piece, 0, n);
            await file.WriteAsync(offset + done, piece.AsMemory(0, n), WriteFlags.None, cancellationToken);
        }
    }

    /// <summary>Writes one header copy into its slot (<see cref="DirtyBitmapHeader.Slot"/>) and makes it durable.</summary>
    public static async ValueTask WriteHeaderAsync(IBlockNode file, DirtyBitmapHeader header, CancellationToken cancellationToken)
    {
        var slot = new byte[DirtyBitmapHeader.SlotSize];
        header.Write(slot);
        await file.WriteAsync((long)header.Slot * DirtyBitmapHeader.SlotSize, slot, WriteFlags.None, cancellationToken);
        await file.FlushAsync(cancellationToken);
    }

    /// <summary>
    /// Writes a new, empty, consistent file on <paramref name="file"/> (grown to the layout's length
    /// if shorter; its areas must read as zeroes): both header copies, generations 0 and 1.
    /// </summary>
    public static async ValueTask FormatAsync(IBlockNode file, DirtyBitmapHeader header, CancellationToken cancellationToken = default)
    {
        if (file.Size < header.FileLength)
        {
            await file.ResizeAsync(header.FileLength, cancellationToken);
        }

        var older = header with { Generation = header.Generation - 1 };
        var slot = new byte[DirtyBitmapHeader.SlotSize];
        older.Write(slot);
        await file.WriteAsync((long)older.Slot * DirtyBitmapHeader.SlotSize, slot, WriteFlags.None, cancellationToken);
        await WriteHeaderAsync(file, header, cancellationToken);
    }

    /// <summary>The indexes of the set bits of <paramref name="words"/>, in order.</summary>
    public static IEnumerable<long> SetBits(ulong[] words)
    {
        for (long w = 0; w < words.Length; w++)
        {
            for (ulong word = words[w]; word != 0; word &= word - 1)
            {
                yield return w * 64 + System.Numerics.BitOperations.TrailingZeroCount(word);
            }
        }
    }
}
