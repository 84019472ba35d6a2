using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Cli.Img;

/// <summary>
/// <c>convert --bitmaps</c>: copies the source's persistent bitmaps into the target after the data,
/// with their names, granularities and enabled state, as qemu-img does. An inconsistent bitmap (left
/// in use) stops the convert before anything is written, unless --skip-broken-bitmaps leaves it out.
/// </summary>
public static class ConvertBitmaps
{
    /// <summary>The bitmaps to copy; refuses, before any copy, a source that has none to give or holds an inconsistent one.</summary>
    public static IReadOnlyList<StoredBitmapInfo> Plan(IBlockNode source, bool skipBroken, ImgContext context)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(context);
        if (source is not IBitmapHost host)
        {
            throw new CliException($"Source '{source.FileName}' does not support persistent bitmaps (its format is {source.DriverName})");
        }

        var copied = new List<StoredBitmapInfo>();
        foreach (var bitmap in host.StoredBitmaps)
        {
            if (!bitmap.InUse)
            {
                copied.Add(bitmap);
            }
            else if (skipBroken)
            {
                context.Err.WriteLine(ImgTool.Prefix + $"warning: Skipping inconsistent bitmap '{bitmap.Name}'");
            }
            else
            {
                throw new CliException($"Cannot copy inconsistent bitmap '{bitmap.Name}'. Try --skip-broken-bitmaps, or use 'strata img bitmap --remove' to delete it");
            }
        }

        return copied;
    }

    /// <summary>
    /// Refuses a target format that cannot store bitmaps, before the data is copied; a target the
    /// convert created is closed and deleted first, so the failed command leaves no file behind.
    /// </summary>
    public static async Task CheckTargetAsync(IBlockNode target, string format, string path, bool created)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target is IBitmapHost)
        {
            return;
        }

        if (created)
        {
            await target.DisposeAsync();
            File.Delete(path);
        }

        throw new CliException($"Format driver '{format}' does not support bitmaps");
    }

    /// <summary>Creates each planned bitmap in the target and stores the source's bits in it.</summary>
    public static async Task CopyAsync(IBlockNode source, IBlockNode target, IReadOnlyList<StoredBitmapInfo> bitmaps)
    {
        ArgumentNullException.ThrowIfNull(bitmaps);
        var from = (IBitmapHost)source;
        var to = (IBitmapHost)target;
        foreach (var bitmap in bitmaps)
        {
            await using var reader = from.OpenBitmap(bitmap.Name);
            var bits = new DirtyBitmap(source.Size, bitmap.Granularity);
            await reader.LoadAsync(bits);
            if (target.Size != source.Size)
            {
                var grown = new DirtyBitmap(target.Size, bitmap.Granularity);
                grown.Load([.. bits.Words, .. new ulong[grown.Words.Length - bits.Words.Length]]);
                bits = grown;
            }

            await using var writer = await to.CreateBitmapAsync(bitmap.Name, bitmap.Granularity, bitmap.Enabled);
            await writer.SaveAsync(bits, BitmapStoreState.Consistent, bitmap.Enabled);
        }
    }
}
