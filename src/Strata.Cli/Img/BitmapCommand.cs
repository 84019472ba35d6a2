using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Cli.Img;

/// <summary>
/// <c>strata img bitmap</c>: add, remove, clear, enable, disable and merge the persistent bitmaps
/// an image stores (qcow2's bitmaps extension), spelled and ordered as qemu-img bitmap.
/// </summary>
public static class BitmapCommand
{
    private const string Synopsis = "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b SOURCE_FILE [-F SOURCE_FMT]] [-g GRANULARITY] [-f FMT] FILE BITMAP";

    private static readonly ArgParser Parser = new("b:f:F:g:", "add", "remove", "clear", "enable", "disable", "merge=");

    private static readonly string[] Operations = ["add", "remove", "clear", "enable", "disable", "merge"];

    public static ImgSubcommand Definition { get; } = new("bitmap", Synopsis, ManualText.Build(
        "bitmap", "change the persistent bitmaps an image stores", "strata img " + Synopsis,
        "Applies the operations, in the order given, to the bitmap BITMAP of FILE (a qcow2 image, whose\n"
        + "bitmaps QEMU reads and writes too). A bitmap marks, one bit per GRANULARITY bytes, the parts\n"
        + "of the disk written while it was enabled; an enabled bitmap records every write to the image.\n"
        + "A bitmap left in use by a program that stopped without saving it is inconsistent: it can only\n"
        + "be removed.",
        [
            ("--add", "Create BITMAP, empty and enabled."),
            ("--remove", "Delete BITMAP and free its space."),
            ("--clear", "Clear every bit of BITMAP."),
            ("--enable", "Let BITMAP record writes."),
            ("--disable", "Stop BITMAP recording writes."),
            ("--merge SOURCE", "Mark in BITMAP everything marked in the bitmap SOURCE, of FILE or of -b's image.\n"
                + "Granularities may differ: a coarser result marks more, never less."),
            ("-b SOURCE_FILE", "The image that holds --merge's SOURCE (opened read-only)."),
            ("-F SOURCE_FMT", "SOURCE_FILE's format; probed when omitted."),
            ("-g GRANULARITY", "--add's bytes per bit: a power of two from 512 to 64M; by default the\n"
                + "larger of 4k and the image's cluster size (as qemu-img)."),
            ("-f FMT", "FILE's format; probed when omitted."),
        ],
        "0 on success, 1 on any error (operations before the failing one stay done)."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        var operations = parsed.Options.Where(o => Operations.Contains(o.Key)).ToList();
        if (operations.Count == 0)
        {
            throw new CliException("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
        }

        if (parsed.Has("g") && !parsed.Has("add"))
        {
            throw new CliException("granularity only supported with --add");
        }

        if (parsed.Has("b") && !parsed.Has("merge"))
        {
            throw new CliException("-b only supported with --merge");
        }

        if (parsed.Has("F") && !parsed.Has("b"))
        {
            throw new CliException("-F only supported with -b");
        }

        if (parsed.Positionals.Count != 2)
        {
            throw new CliException(parsed.Positionals.Count < 2 ? "Expecting filename and bitmap name" : $"Unexpected argument: {parsed.Positionals[2]}");
        }

        long? granularity = parsed.Get("g") is { } g ? ImgContext.ParseSize(g, "granularity") : null;
        string name = parsed.Positionals[1];
        await using var image = await ImgContext.OpenAsync(parsed.Positionals[0], parsed.Get("f"), readOnly: false, openBacking: false);
        foreach (var (operation, source) in operations)
        {
            try
            {
                await ApplyAsync(image, operation, name, source, granularity, parsed);
            }
            catch (BlockException e)
            {
                throw new CliException($"Operation {operation} on bitmap {name} failed: {e.Message}");
            }
        }

        await image.FlushAsync();
        return 0;
    }

    private static async Task ApplyAsync(IBlockNode image, string operation, string name, string? source, long? granularity, ParsedArgs parsed)
    {
        var host = Host(image);
        if (operation == "add")
        {
            long defaultGranularity = Math.Max(4096, (image as IImageFacts)?.FormatInfo.ClusterSize ?? 65536);
            await using var created = await host.CreateBitmapAsync(name, granularity ?? defaultGranularity, enabled: true);
            return;
        }

        await using var store = Open(host, name);
        if (operation == "remove")
        {
            await store.RemoveAsync();
            return;
        }

        var bits = await LoadConsistentAsync(store, name);
        bool enabled = bits.Enabled;
        switch (operation)
        {
            case "clear":
                bits.Bits.ClearAll();
                break;
            case "enable" or "disable":
                enabled = operation == "enable";
                break;
            default:
                bits.Bits.MergeFrom(await LoadSourceAsync(image, source!, parsed));
                break;
        }

        await store.SaveAsync(bits.Bits, BitmapStoreState.Consistent, enabled);
    }

    private static IBitmapHost Host(IBlockNode image) => image as IBitmapHost
        ?? throw BlockException.NotSupported($"Can't store persistent bitmaps to '{image.FileName}': the {image.DriverName} format has none");

    private static IBitmapStore Open(IBitmapHost host, string name)
        => host.StoredBitmaps.Any(b => b.Name == name) ? host.OpenBitmap(name) : throw BlockException.Invalid($"Dirty bitmap '{name}' not found");

    private static async Task<(DirtyBitmap Bits, bool Enabled)> LoadConsistentAsync(IBitmapStore store, string name)
    {
        var bits = new DirtyBitmap(store.DiskSize, store.Granularity);
        var loaded = await store.LoadAsync(bits);
        if (loaded.State == BitmapStoreState.Inconsistent)
        {
            throw BlockException.Invalid($"Bitmap '{name}' is inconsistent and cannot be used");
        }

        return (bits, loaded.Enabled);
    }

    /// <summary>The bits of --merge's source: a bitmap of the same image, or of -b's image opened read-only.</summary>
    private static async Task<DirtyBitmap> LoadSourceAsync(IBlockNode image, string source, ParsedArgs parsed)
    {
        if (parsed.Get("b") is not { } sourceFile)
        {
            await using var store = Open(Host(image), source);
            return (await LoadConsistentAsync(store, source)).Bits;
        }

        await using var other = await ImgContext.OpenAsync(sourceFile, parsed.Get("F"), readOnly: true, openBacking: false);
        await using var sourceStore = Open(Host(other), source);
        return (await LoadConsistentAsync(sourceStore, source)).Bits;
    }
}
