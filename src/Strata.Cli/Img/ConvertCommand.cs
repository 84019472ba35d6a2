using Strata.Block;
using Strata.Block.Copy;
using Strata.Formats;

namespace Strata.Cli.Img;

/// <summary><c>strata img convert</c>: copy an image (its whole chain) into a new image of any registered format.</summary>
public static class ConvertCommand
{
    private const string Synopsis = "convert [-p] [-q] [-n] [-U] [--bitmaps [--skip-broken-bitmaps]] [-f FMT] -O OUTPUT_FMT [-o OPTIONS] [-B BACKING] SRC DST";

    private static readonly ArgParser Parser = new("pqnf:O:o:B:cm:Wt:T:S:U", "force-share", "bitmaps", "skip-broken-bitmaps");

    public static ImgSubcommand Definition { get; } = new("convert", Synopsis, ManualText.Build(
        "convert", "copy an image into a new image of any format", "strata img " + Synopsis,
        "Reads SRC as the guest sees it (backing chain included) and writes it to DST, a new image of\n"
        + "format OUTPUT_FMT. The copy is sparse: runs that read as zeroes, found through block status\n"
        + "or by scanning the data, are not written.",
        [
            ("-f FMT", "SRC's format; probed when omitted."),
            ("-O OUTPUT_FMT", $"One of {ImgContext.Drivers.FormatNames}; raw when omitted."),
            ("-c", "Not supported yet: refused with an error."),
            ("-o OPTIONS", "Creation options of DST, as for create ('-o help' lists them)."),
            ("-B BACKING", "Not supported yet: refused with an error."),
            ("-n", "DST exists already: do not create it; zero runs are written as zeroes."),
            ("-p", "Show progress."),
            ("-q", "Quiet: print nothing but errors."),
            ("-U, --force-share", "Read SRC even while another process writes it (the copy may then be\n"
                + "inconsistent). Without it SRC must not be written meanwhile, as with qemu-img."),
            ("--bitmaps", "Also copy SRC's persistent bitmaps (qcow2 to qcow2), after the data. An inconsistent\n"
                + "one (left in use) stops the convert before anything is copied."),
            ("--skip-broken-bitmaps", "With --bitmaps: leave inconsistent bitmaps out, with a warning."),
            ("-m N, -W, -t CACHE, -T CACHE, -S SIZE", "Accepted for compatibility with qemu-img; no effect."),
        ],
        "0 on success, 1 on any error."), RunAsync);

    /// <summary>qemu-img convert's source: it reads, and nobody may write what it copies (BDRV_O_NO_SHARE).</summary>
    private static NodePermissions SourcePermissions { get; } = new(BlockPermissions.ConsistentRead, BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        context.Quiet = parsed.Has("q");
        if (parsed.Has("c"))
        {
            throw new CliException("Compressed output (-c) is not supported");
        }

        if (parsed.Has("B"))
        {
            throw new CliException("Converting onto a backing file (-B) is not supported");
        }

        string format = parsed.Get("O") ?? ImageOpener.Raw;
        ImgContext.CheckFormat(format);
        var options = parsed.GetAll("o").SelectMany(ImageCreator.ParseOptionList).ToList();
        if (options.Exists(o => o.Key is "help" or "?"))
        {
            return await CreateCommand.Definition.RunAsync(["-f", format, "-o", "help"], context);
        }

        if (parsed.Positionals.Count != 2)
        {
            throw new CliException(parsed.Positionals.Count < 2 ? "Expecting a source and a target file name" : $"Unexpected argument: {parsed.Positionals[2]}");
        }

        if (!ImgContext.Drivers.Format(format).IsDisk)
        {
            throw new CliException($"'{format}' is not a disk image format: convert writes disk images");
        }

        string sourcePath = parsed.Positionals[0];
        string targetPath = parsed.Positionals[1];
        await using var source = await ImgContext.OpenAsync(sourcePath, parsed.Get("f"), readOnly: true, permissions: SourcePermissions,
            forceShare: ImgContext.ForceShare(parsed));
        if (parsed.Has("skip-broken-bitmaps") && !parsed.Has("bitmaps"))
        {
            throw new CliException("--skip-broken-bitmaps requires --bitmaps");
        }

        var bitmaps = parsed.Has("bitmaps") ? ConvertBitmaps.Plan(source, parsed.Has("skip-broken-bitmaps"), context) : null;
        bool create = !parsed.Has("n");
        if (create)
        {
            try
            {
                var plan = await ImageCreator.PlanAsync(ImgContext.Drivers, targetPath, format, source.Size, null, null, options);
                await using var held = await ImgContext.HoldForCreateAsync(targetPath);
                await ImageCreator.CreateAsync(plan);
            }
            catch (BlockException e)
            {
                throw new CliException($"{targetPath}: error while converting {format}: {e.Message}");
            }
        }

        await using var target = await ImgContext.OpenAsync(targetPath, format, readOnly: false);
        if (target.Size < source.Size)
        {
            throw new CliException($"Target '{targetPath}' is smaller than the source");
        }

        if (bitmaps is not null)
        {
            await ConvertBitmaps.CheckTargetAsync(target, format, targetPath, create);
        }

        var copy = new BlockCopy(ChainView.Whole(source), target, new BlockCopyOptions { TargetIsZero = create, DetectZeroes = true });
        await ProgressDisplay.RunAsync(context, parsed.Has("p"), "convert", progress => copy.CopyAllAsync(source.Size, progress));
        if (bitmaps is not null)
        {
            await ConvertBitmaps.CopyAsync(source, target, bitmaps);
        }

        await target.FlushAsync();
        return 0;
    }
}
