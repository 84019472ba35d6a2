namespace Strata.Block.Copy;

/// <summary>
/// One piece of a running copy, handed to <see cref="BlockCopyOptions.Step"/>: the step decides when
/// and how often (a retry after an error) <see cref="CopyAsync"/> runs. Valid only until the step
/// returns: its buffers go back to the copy's worker.
/// </summary>
public sealed class CopyChunk
{
    private readonly BlockCopy _copy;
    private readonly Memory<byte> _buffer;
    private readonly Memory<byte> _reference;

    internal CopyChunk(BlockCopy copy, CopyRange range, Memory<byte> buffer, Memory<byte> reference)
    {
        _copy = copy;
        Range = range;
        _buffer = buffer;
        _reference = reference;
    }

    public CopyRange Range { get; }

    /// <summary>True once the last <see cref="CopyAsync"/> began writing the target (an error then was a write error).</summary>
    public bool IsWriting { get; internal set; }

    /// <summary>
    /// A piece of this chunk sharing its buffer, copied on its own: a step that copies only part of
    /// its range (a backup skips the clusters copy-before-write has taken already).
    /// </summary>
    public CopyChunk Part(CopyRange part)
    {
        if (part.Offset < Range.Offset || part.End > Range.End || part.Length <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(part), part, $"a part lies inside the chunk {Range}");
        }

        return new CopyChunk(_copy, part, _buffer.Slice((int)(part.Offset - Range.Offset), (int)part.Length), _reference.IsEmpty ? _reference
            : _reference.Slice((int)(part.Offset - Range.Offset), (int)part.Length));
    }

    /// <summary>Copies the chunk as the source reads now; may run again after a failure.</summary>
    public ValueTask CopyAsync(CancellationToken cancellationToken)
    {
        IsWriting = false;
        return _copy.CopyChunkAsync(this, _buffer, _reference, cancellationToken);
    }
}
