using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Strata.Block.Bitmaps;

/// <summary>
/// The bits of one dirty bitmap: one bit per granule of <see cref="Granularity"/> bytes of a
/// <see cref="DiskSize"/>-byte disk, set when a guest write touched the granule (docs/interop/bitmaps.rst).
/// </summary>
/// <remarks>
/// Marking is lock-free (an atomic OR per word), so any number of request threads mark at once; a
/// reader sees every bit set before its read started. Bits are kept as little-endian 64-bit words,
/// bit <c>i</c> of word <c>w</c> being granule <c>64 w + i</c>: the layout of QEMU's last HBitmap
/// level, so <see cref="Sha256"/> equals QEMU's x-debug-block-dirty-bitmap-sha256 for the same bits,
/// and of a dirty_bitmap file's bit area (docs/formats/dirty-bitmap.md). Bits past the last granule
/// are always clear. Memory: one bit per granule, 2 MiB per TiB at 64 KiB granularity.
/// </remarks>
public sealed class DirtyBitmap
{
    /// <summary>The smallest granularity a bitmap may have (QEMU's: one sector).</summary>
    public const long MinGranularity = 512;

    /// <summary>The largest granularity a bitmap may have (QEMU's limit for qcow2 bitmaps is 2 GiB; ours is 64 MiB).</summary>
    public const long MaxGranularity = 64L << 20;

    // Words hashed at a time by Sha256: 64 KiB of bytes.
    private const int HashPieceWords = 8192;

    private readonly ulong[] _words;
    private readonly int _shift;

    public DirtyBitmap(long diskSize, long granularity)
    {
        ValidateGranularity(granularity);
        ArgumentOutOfRangeException.ThrowIfNegative(diskSize);
        DiskSize = diskSize;
        Granularity = granularity;
        _shift = BitOperations.Log2((ulong)granularity);
        GranuleCount = (diskSize + granularity - 1) >> _shift;
        long words = (GranuleCount + 63) >> 6;
        if (words > Array.MaxLength)
        {
            throw BlockException.Invalid($"a bitmap of {diskSize} bytes at {granularity}-byte granularity is too large");
        }

        _words = new ulong[words];
    }

    public long DiskSize { get; }

    /// <summary>Bytes per bit: a power of two from <see cref="MinGranularity"/> to <see cref="MaxGranularity"/>.</summary>
    public long Granularity { get; }

    public long GranuleCount { get; }

    /// <summary>The bits as words (see the remarks of the type); the caller must not write them while others mark.</summary>
    public ReadOnlySpan<ulong> Words => _words;

    /// <summary>Bytes of the disk marked dirty (QEMU's "count"): granules set times the granularity, the last one cut at the disk's end.</summary>
    public long DirtyBytes
    {
        get
        {
            long granules = 0;
            for (int i = 0; i < _words.Length; i++)
            {
                granules += BitOperations.PopCount(Volatile.Read(ref _words[i]));
            }

            long bytes = granules << _shift;
            if (GranuleCount > 0 && IsGranuleSet(GranuleCount - 1))
            {
                bytes -= (GranuleCount << _shift) - DiskSize;
            }

            return bytes;
        }
    }

    /// <summary>Throws <see cref="BlockException"/> unless <paramref name="granularity"/> is a power of two in range.</summary>
    public static void ValidateGranularity(long granularity)
    {
        if (granularity < MinGranularity || granularity > MaxGranularity || !BitOperations.IsPow2(granularity))
        {
            throw BlockException.Invalid($"granularity {granularity} must be a power of two from {MinGranularity} to {MaxGranularity}");
        }
    }

    /// <summary>Marks every granule that <c>[offset, offset + length)</c> touches; bytes past the disk's end are ignored.</summary>
    public void Set(long offset, long length)
    {
        if (!Clip(ref offset, ref length))
        {
            return;
        }

        long first = offset >> _shift;
        long last = (offset + length - 1) >> _shift;
        ForEachWord(first, last, static (ref ulong word, ulong mask) =>
        {
            if ((Volatile.Read(ref word) & mask) != mask)
            {
                Interlocked.Or(ref word, mask);
            }
        });
    }

    /// <summary>
    /// Clears the granules that lie wholly inside <c>[offset, offset + length)</c> (a granule only
    /// partly covered stays as it is: clearing it could lose a write to its other part). The end of
    /// the disk counts as a granule boundary.
    /// </summary>
    public void Clear(long offset, long length)
    {
        if (!Clip(ref offset, ref length))
        {
            return;
        }

        long first = (offset + Granularity - 1) >> _shift;
        long end = offset + length;
        long lastExclusive = end == DiskSize ? GranuleCount : end >> _shift;
        if (first >= lastExclusive)
        {
            return;
        }

        ForEachWord(first, lastExclusive - 1, static (ref ulong word, ulong mask) => Interlocked.And(ref word, ~mask));
    }

    /// <summary>Clears every bit.</summary>
    public void ClearAll() => Clear(0, DiskSize);

    /// <summary>Marks everything.</summary>
    public void SetAll() => Set(0, DiskSize);

    /// <summary>Whether the granule holding byte <paramref name="offset"/> is dirty.</summary>
    public bool IsDirty(long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        return offset < DiskSize && IsGranuleSet(offset >> _shift);
    }

    /// <summary>
    /// The run of equal bits starting at <paramref name="offset"/>, at most <paramref name="maxLength"/>
    /// bytes and never past the disk's end: whether it is dirty, and how long it is. Granule-aligned
    /// except at <paramref name="offset"/> itself and at the disk's end.
    /// </summary>
    public (bool Dirty, long Length) GetRun(long offset, long maxLength)
    {
        if (offset < 0 || offset >= DiskSize || maxLength <= 0)
        {
            throw BlockException.Invalid($"run at {offset} of {maxLength} bytes is outside the {DiskSize}-byte bitmap");
        }

        long limit = Math.Min(DiskSize, offset + Math.Min(maxLength, DiskSize));
        long granule = offset >> _shift;
        bool dirty = IsGranuleSet(granule);
        long lastGranule = (limit - 1) >> _shift;
        long next = NextDifferent(granule + 1, lastGranule + 1, dirty);
        long end = Math.Min(limit, next << _shift);
        return (dirty, end - offset);
    }

    /// <summary>The dirty runs as byte extents in order, merged where adjacent, cut at the disk's end.</summary>
    public IEnumerable<(long Offset, long Length)> DirtyRuns()
    {
        long offset = 0;
        while (offset < DiskSize)
        {
            var (dirty, length) = GetRun(offset, DiskSize - offset);
            if (dirty)
            {
                yield return (offset, length);
            }

            offset += length;
        }
    }

    /// <summary>
    /// Marks here every byte that <paramref name="source"/> has marked (QEMU's block-dirty-bitmap-merge).
    /// Granularities may differ: each source run is marked at this bitmap's granularity, so a coarser
    /// result is a superset, never a loss. Disk sizes must match.
    /// </summary>
    public void MergeFrom(DirtyBitmap source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.DiskSize != DiskSize)
        {
            throw BlockException.Invalid($"cannot merge a bitmap of a {source.DiskSize}-byte disk into one of a {DiskSize}-byte disk");
        }

        if (source.Granularity == Granularity)
        {
            for (int i = 0; i < _words.Length; i++)
            {
                ulong w = Volatile.Read(ref source._words[i]);
                if (w != 0)
                {
                    Interlocked.Or(ref _words[i], w);
                }
            }

            return;
        }

        foreach (var (offset, length) in source.DirtyRuns())
        {
            Set(offset, length);
        }
    }

    /// <summary>Replaces every bit with those of <paramref name="words"/> (same layout as <see cref="Words"/>); bits past the last granule are dropped.</summary>
    public void Load(ReadOnlySpan<ulong> words)
    {
        if (words.Length != _words.Length)
        {
            throw BlockException.Invalid($"bitmap data of {words.Length} words does not fit a bitmap of {_words.Length} words");
        }

        words.CopyTo(_words);
        MaskTail();
    }

    /// <summary>
    /// Replaces the words that bytes <c>[byteOffset, byteOffset + bytes.Length)</c> of the bits'
    /// little-endian layout (see the remarks of the type) hold with <paramref name="bytes"/>: a
    /// stored bitmap is read piece by piece straight into its place, so loading holds it once, not
    /// twice. Offset and length are whole words; the piece that ends at the last word drops the bits
    /// past the last granule. Nobody may mark while it runs; after a failed load the bits are unspecified.
    /// </summary>
    public void LoadBytes(long byteOffset, ReadOnlySpan<byte> bytes)
    {
        long first = byteOffset / sizeof(ulong);
        int count = bytes.Length / sizeof(ulong);
        if (byteOffset < 0 || byteOffset % sizeof(ulong) != 0 || bytes.Length % sizeof(ulong) != 0 || first + count > _words.Length)
        {
            throw BlockException.Invalid($"bitmap data of {bytes.Length} bytes at {byteOffset} does not fit a bitmap of {_words.Length} words");
        }

        var target = _words.AsSpan((int)first, count);
        if (BitConverter.IsLittleEndian)
        {
            bytes.CopyTo(MemoryMarshal.AsBytes(target));
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                target[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * sizeof(ulong))..]);
            }
        }

        if (first + count == _words.Length)
        {
            MaskTail();
        }
    }

    /// <summary>A copy of the words at this moment (marks racing with it may or may not be in it).</summary>
    public ulong[] CopyWords()
    {
        var copy = new ulong[_words.Length];
        for (int i = 0; i < copy.Length; i++)
        {
            copy[i] = Volatile.Read(ref _words[i]);
        }

        return copy;
    }

    /// <summary>SHA-256 of the words as little-endian bytes, as lowercase hex: QEMU's x-debug-block-dirty-bitmap-sha256.</summary>
    /// <remarks>Hashed in 64 KiB pieces, so a large bitmap is never copied whole.</remarks>
    public string Sha256()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var piece = new byte[Math.Min(_words.Length, HashPieceWords) * sizeof(ulong)];
        for (int start = 0; start < _words.Length; start += HashPieceWords)
        {
            int count = Math.Min(HashPieceWords, _words.Length - start);
            for (int i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(piece.AsSpan(i * sizeof(ulong)), Volatile.Read(ref _words[start + i]));
            }

            hash.AppendData(piece, 0, count * sizeof(ulong));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private bool IsGranuleSet(long granule) => (Volatile.Read(ref _words[granule >> 6]) & (1UL << (int)(granule & 63))) != 0;

    // First granule in [from, to) whose bit is not `value`; `to` when there is none.
    private long NextDifferent(long from, long to, bool value)
    {
        long g = from;
        while (g < to)
        {
            ulong word = Volatile.Read(ref _words[g >> 6]);
            if (value)
            {
                word = ~word;
            }

            word >>= (int)(g & 63);
            if (word != 0)
            {
                return Math.Min(to, g + BitOperations.TrailingZeroCount(word));
            }

            g = (g | 63) + 1;
        }

        return to;
    }

    private bool Clip(ref long offset, ref long length)
    {
        if (offset < 0 || length < 0)
        {
            throw BlockException.Invalid($"range at {offset} of {length} bytes is negative");
        }

        if (length == 0 || offset >= DiskSize)
        {
            return false;
        }

        length = Math.Min(length, DiskSize - offset);
        return true;
    }

    private delegate void WordAction(ref ulong word, ulong mask);

    // Applies `action` with the mask of granules [first, last] to each word they span.
    private void ForEachWord(long first, long last, WordAction action)
    {
        long firstWord = first >> 6;
        long lastWord = last >> 6;
        for (long w = firstWord; w <= lastWord; w++)
        {
            int lo = w == firstWord ? (int)(first & 63) : 0;
            int hi = w == lastWord ? (int)(last & 63) : 63;
            ulong mask = hi == 63 ? ~0UL << lo : ((1UL << (hi + 1)) - 1) & (~0UL << lo);
            action(ref _words[w], mask);
        }
    }

    private void MaskTail()
    {
        int used = (int)(GranuleCount & 63);
        if (used != 0)
        {
            _words[^1] &= (1UL << used) - 1;
        }
    }
}
