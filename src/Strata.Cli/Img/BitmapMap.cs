using System.Text;
using Strata.Block.Bitmaps;

namespace Strata.Cli.Img;

/// <summary>
/// <c>img map</c> of a dirty bitmap (a dirty_bitmap file): its dirty extents. Text lists the dirty
/// runs in qemu-img map's table ("Offset Length File"); JSON lists every run as
/// <c>{ "start", "length", "dirty" }</c>.
/// </summary>
public static class BitmapMap
{
    public static void Write(ImgContext context, IBitmapImage bitmap, string file, bool json, bool forceShare)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(bitmap);
        if (bitmap.Tracked && !forceShare)
        {
            throw new CliException($"'{file}' is being tracked (state active): its stored bits are behind the tracker; "
                + "stop tracking first, or use -U to see what is stored (possibly incomplete)");
        }

        if (bitmap.Tracked)
        {
            context.Err.WriteLine(ImgTool.Prefix + $"warning: '{file}' is being tracked: the extents shown may be incomplete");
        }
        else if (bitmap.State == BitmapStoreState.Active)
        {
            context.Err.WriteLine(ImgTool.Prefix + $"warning: '{file}' was left in use by a tracker that stopped: showing the recovered superset");
        }
        else if (bitmap.State == BitmapStoreState.Inconsistent)
        {
            context.Err.WriteLine(ImgTool.Prefix + $"warning: '{file}' failed its checksum: every block is shown dirty");
        }

        var bits = bitmap.Bits;
        var text = new StringBuilder(json ? "[" : $"{"Offset",-16}{"Length",-16}File\n");
        long offset = 0;
        while (offset < bits.DiskSize)
        {
            var (dirty, length) = bits.GetRun(offset, bits.DiskSize - offset);
            if (json)
            {
                text.Append(offset == 0 ? "" : ",\n").Append($"{{ \"start\": {offset}, \"length\": {length}, \"dirty\": {(dirty ? "true" : "false")}}}");
            }
            else if (dirty)
            {
                text.Append($"{MapCommand.Hex(offset),-16}{MapCommand.Hex(length),-16}{file}\n");
            }

            offset += length;
        }

        context.Out.Write(json ? text.Append("]\n") : text);
    }
}
