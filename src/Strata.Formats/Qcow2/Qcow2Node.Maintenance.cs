using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>Whole-image operations: resize, make-empty (after commit), changing the backing file name.</summary>
public sealed partial class Qcow2Node : IEmptiableLayer
{
    /// <summary>Grows the image (growing the L1 table when needed); shrinking is refused with NotSupported.</summary>
    public async ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        if (newSize < Size)
        {
            throw BlockException.NotSupported("qcow2 images cannot shrink");
        }

        long coverage = (long)_clusterSize << _l2Bits;
        long needL1 = (newSize + coverage - 1) / coverage;
        if (needL1 > Qcow2Header.MaxL1Bytes / 8)
        {
            throw BlockException.Invalid($"qcow2: size {newSize} is too large for cluster size {_clusterSize}");
        }

        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            if (needL1 > _l1.Length)
            {
                await GrowL1Locked((int)needL1, cancellationToken);
            }

            await ResizeWithBitmapsLocked(newSize, cancellationToken);
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    /// <summary>Deallocates every cluster so the image reads entirely from its backing (after a commit), durably.</summary>
    public async ValueTask MakeEmptyAsync(CancellationToken cancellationToken = default)
    {
        CheckWritable();

        // Not a write for the bitmaps (as QEMU's make_empty): after a commit the image reads the same.
        long clusters = (Size + _clusterSize - 1) >> _clusterBits;
        await UpdateClustersAsync(0, clusters, Qcow2ClusterUpdate.Deallocate, cancellationToken);
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            await FlushAllLockedAsync(cancellationToken);
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    /// <summary>Rewrites the backing file name and format in the header (rebase -u); data is untouched.</summary>
    public async ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        if (backingFile is null && backingFormat is not null)
        {
            throw BlockException.Invalid("qcow2: a backing format needs a backing file");
        }

        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            string? oldFile = _header.BackingFile;
            string? oldFormat = _header.BackingFormat;
            _header.BackingFile = string.IsNullOrEmpty(backingFile) ? null : backingFile;
            _header.BackingFormat = _header.BackingFile is null ? null : backingFormat;
            try
            {
                await WriteHeaderClusterLocked(cancellationToken);
            }
            catch
            {
                _header.BackingFile = oldFile;
                _header.BackingFormat = oldFormat;
                throw;
            }
        }
        finally
        {
            _metadataLock.Release();
        }
    }
}
