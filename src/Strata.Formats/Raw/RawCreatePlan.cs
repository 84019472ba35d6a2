using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats.Raw;

/// <summary>A new raw image: a sparse file of the disk's size.</summary>
internal sealed class RawCreatePlan(long size)
    : FormatCreatePlan(size, [new(CreateOption.Size, size.ToString(System.Globalization.CultureInfo.InvariantCulture))])
{
    /// <summary>The first bytes are written so that later O_DIRECT opens can probe alignment, as qemu-img does.</summary>
    private const int FirstBlock = 4096;

    public override long InitialFileSize => Size;

    public override async ValueTask WriteAsync(IBlockNode file, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        int first = (int)Math.Min(Size, FirstBlock);
        if (first > 0)
        {
            await file.WriteAsync(0, new byte[first], WriteFlags.None, cancellationToken);
        }
    }
}
