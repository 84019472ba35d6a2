using System.Buffers;
using System.Security.Cryptography;

namespace Strata.Backup;

/// <summary>
/// A leaf that a copy covers in more than one run (a copy chunk or a zero run ends inside it), put
/// together until its last byte arrives (<see cref="CopiedLeaves"/>). Its bytes are held only once a
/// data run arrives: a leaf made of zero runs alone costs no buffer. Not thread-safe: its owner locks.
/// </summary>
internal sealed class PartialLeaf(int length) : IDisposable
{
    /// <summary>The runs covered so far, as [Start, End) in the leaf, in order, merged where they touch.</summary>
    private readonly List<(int Start, int End)> _covered = [];

    /// <summary>The leaf's bytes once a data run arrived (rented, the first <c>length</c> bytes used); zeroes where no data arrived.</summary>
    private byte[]? _bytes;

    public bool IsComplete => _covered.Count == 1 && _covered[0] == (0, length);

    /// <summary>Data at <paramref name="start"/> in the leaf; a later run over the same bytes replaces them (a copy that ran a chunk again).</summary>
    public void Add(int start, ReadOnlySpan<byte> data)
    {
        if (_bytes is null)
        {
            _bytes = ArrayPool<byte>.Shared.Rent(length);
            _bytes.AsSpan(0, length).Clear();
        }

        data.CopyTo(_bytes.AsSpan(start));
        Cover(start, start + data.Length);
    }

    /// <summary>Zeroes over <paramref name="count"/> bytes at <paramref name="start"/> in the leaf.</summary>
    public void AddZeroes(int start, int count)
    {
        _bytes?.AsSpan(start, count).Clear();
        Cover(start, start + count);
    }

    /// <summary>The digest of the complete leaf: <paramref name="zeroDigest"/> when no data arrived.</summary>
    public byte[] Digest(byte[] zeroDigest) => _bytes is null ? zeroDigest : SHA256.HashData(_bytes.AsSpan(0, length));

    public void Dispose()
    {
        if (_bytes is not null)
        {
            ArrayPool<byte>.Shared.Return(_bytes);
            _bytes = null;
        }
    }

    private void Cover(int start, int end)
    {
        int i = 0;
        while (i < _covered.Count && _covered[i].End < start)
        {
            i++;
        }

        // Merge every run that overlaps or touches [start, end) into one.
        while (i < _covered.Count && _covered[i].Start <= end)
        {
            start = Math.Min(start, _covered[i].Start);
            end = Math.Max(end, _covered[i].End);
            _covered.RemoveAt(i);
        }

        _covered.Insert(i, (start, end));
    }
}
