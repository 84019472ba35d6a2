using System.Globalization;
using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>A new dirty_bitmap file: empty, consistent, of the layout <see cref="DirtyBitmapHeader.ForNew"/> gives.</summary>
internal sealed class DirtyBitmapCreatePlan(DirtyBitmapHeader header) : FormatCreatePlan(header.DiskSize,
    [
        new(DirtyBitmapFormatDriver.ClusterSizeOption, header.Granularity.ToString(CultureInfo.InvariantCulture)),
        new(CreateOption.Size, header.DiskSize.ToString(CultureInfo.InvariantCulture)),
    ])
{
    /// <summary>The whole layout, sparse: every area reads as zeroes before the headers are written.</summary>
    public override long InitialFileSize => header.FileLength;

    public override ValueTask WriteAsync(IBlockNode file, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        return DirtyBitmapFile.FormatAsync(file, header, cancellationToken);
    }
}
