using Strata.Block;

namespace Strata.TestKit;

/// <summary>
/// What a disk must read as, byte by byte, after a workload: the reference every driver is checked
/// against. Discarded bytes are "unspecified" (the node contract): they may read as what they were,
/// as zeroes, or as the backing layer's bytes; <see cref="Adopt"/> pins them to what the node returned
/// so that the model can then serve as an exact raw reference for <c>qemu-img compare</c>.
/// </summary>
public sealed class DiskModel
{
    private readonly byte[] _data;
    private readonly bool[] _unspecified;
    private readonly byte[]? _backing;

    /// <param name="size">Virtual size in bytes (the model holds it in memory: keep it to a few MiB).</param>
    /// <param name="backing">What the layer below reads as (a copy is kept); null: no backing, reads zero.</param>
    public DiskModel(long size, byte[]? backing = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, Array.MaxLength);
        _data = new byte[size];
        _unspecified = new bool[size];
        if (backing is not null)
        {
            _backing = new byte[size];
            backing.AsSpan(0, (int)Math.Min(size, backing.Length)).CopyTo(_backing);
            _backing.CopyTo(_data, 0);
        }
    }

    public long Size => _data.LongLength;

    /// <summary>The expected content (unspecified bytes hold their last defined value).</summary>
    public ReadOnlySpan<byte> Bytes => _data;

    /// <summary>A model for an overlay on this disk: starts as this disk's content, falls back to it.</summary>
    public DiskModel Overlay(long? size = null)
    {
        if (_unspecified.Contains(true))
        {
            throw new InvalidOperationException("adopt the node's content before stacking an overlay on the model");
        }

        return new DiskModel(size ?? Size, _data);
    }

    public void Apply(DiskOp op)
    {
        ArgumentNullException.ThrowIfNull(op);
        if (op.Kind == DiskOpKind.Flush)
        {
            return;
        }

        var range = new Range((int)op.Offset, (int)op.End);
        switch (op.Kind)
        {
            case DiskOpKind.Write:
                op.Data.AsSpan().CopyTo(_data.AsSpan(range));
                _unspecified.AsSpan(range).Clear();
                break;
            case DiskOpKind.WriteZeroes or DiskOpKind.WriteZeroesUnmap:
                _data.AsSpan(range).Clear();
                _unspecified.AsSpan(range).Clear();
                break;
            case DiskOpKind.Discard:
                _unspecified.AsSpan(range).Fill(true);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op.Kind, "unknown op");
        }
    }

    /// <summary>
    /// The first byte at which <paramref name="actual"/> (read at <paramref name="offset"/>) disagrees
    /// with the model, or -1. An unspecified byte agrees when it is its old value, zero or the backing's.
    /// </summary>
    public long FirstMismatch(long offset, ReadOnlySpan<byte> actual)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            long at = offset + i;
            byte want = _data[at];
            byte got = actual[i];
            if (got == want)
            {
                continue;
            }

            if (_unspecified[at] && (got == 0 || (_backing is not null && got == _backing[at])))
            {
                continue;
            }

            return at;
        }

        return -1;
    }

    /// <summary>Pins unspecified bytes to what the node read (call after checking with <see cref="FirstMismatch"/>).</summary>
    public void Adopt(long offset, ReadOnlySpan<byte> actual)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            long at = offset + i;
            if (_unspecified[at])
            {
                _data[at] = actual[i];
                _unspecified[at] = false;
            }
        }
    }

    /// <summary>
    /// Reads the whole node in chunks, asserts it matches (throwing with <paramref name="context"/>, which
    /// should carry the seed) and adopts the unspecified bytes.
    /// </summary>
    public async ValueTask VerifyAndAdoptAsync(IBlockNode node, string context, int chunk = 1 << 20, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.Size != Size)
        {
            throw new ModelMismatchException($"{context}: node size {node.Size} but model size {Size}");
        }

        var buffer = new byte[chunk];
        for (long offset = 0; offset < Size; offset += chunk)
        {
            int n = (int)Math.Min(chunk, Size - offset);
            await node.ReadAsync(offset, buffer.AsMemory(0, n), cancellationToken);
            long bad = FirstMismatch(offset, buffer.AsSpan(0, n));
            if (bad >= 0)
            {
                throw new ModelMismatchException(
                    $"{context}: byte {bad} reads 0x{buffer[bad - offset]:x2}, model says 0x{_data[bad]:x2}{(_unspecified[bad] ? " (unspecified)" : "")}");
            }

            Adopt(offset, buffer.AsSpan(0, n));
        }
    }

    /// <summary>Writes the (adopted) content as a raw image, the reference for <c>qemu-img compare</c>.</summary>
    public void WriteRaw(string path) => File.WriteAllBytes(path, _data);
}
