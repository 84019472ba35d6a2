using Strata.Block;
using Strata.Block.Copy;
using Strata.Formats;

namespace Strata.Cli.Img;

/// <summary><c>strata img rebase</c>: give an overlay another backing file.</summary>
public static class RebaseCommand
{
    private const string Synopsis = "rebase [-q] [-p] [-u] [-U] [-f FMT] [-F BACKING_FMT] -b BACKING FILE";

    private static readonly ArgParser Parser = new("qpuf:F:b:t:T:U", "force-share");

    public static ImgSubcommand Definition { get; } = new("rebase", Synopsis, ManualText.Build(
        "rebase", "change the backing file of an image", "strata img " + Synopsis,
        "Changes FILE's backing file to BACKING ('' removes it). In safe mode (the default) every run\n"
        + "FILE does not allocate is compared between the old and the new backing chain, and runs that\n"
        + "differ are copied into FILE first, so FILE reads the same afterwards. With -u only the header\n"
        + "is changed (the old and new backing files must have the same content).",
        [
            ("-b BACKING", "The new backing file, relative to FILE's folder unless absolute; '' for none."),
            ("-F BACKING_FMT", "The new backing file's format; probed once when omitted."),
            ("-f FMT", "FILE's format; probed when omitted."),
            ("-u", "Unsafe: change the header only."),
            ("-p", "Show progress."),
            ("-q", "Quiet: print nothing but errors."),
            ("-U, --force-share", "Read the old and new backing files even while another process writes them."),
        ],
        "0 on success, 1 on any error."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        context.Quiet = parsed.Has("q");
        if (parsed.Positionals.Count != 1)
        {
            throw new CliException(parsed.Positionals.Count == 0 ? "Expecting one image file name" : $"Unexpected argument: {parsed.Positionals[1]}");
        }

        string file = parsed.Positionals[0];
        string backing = parsed.Get("b") ?? throw new CliException("Must specify backing file (-b) or use '-b \"\"' to remove it");
        string? backingFormat = parsed.Get("F");
        if (backingFormat is not null)
        {
            ImgContext.CheckFormat(backingFormat);
        }

        string? newBacking = backing.Length == 0 ? null : backing;
        if (newBacking is not null && backingFormat is null)
        {
            string resolved = ImageOpener.ResolveBackingPath(file, newBacking);
            if (File.Exists(resolved) || !parsed.Has("u"))
            {
                backingFormat = await ImageOpener.ProbeFormatAsync(resolved);
            }
        }

        bool safe = !parsed.Has("u");
        bool forceShare = ImgContext.ForceShare(parsed);
        await using var image = await ImgContext.OpenAsync(file, parsed.Get("f"), readOnly: false, openBacking: safe, forceShare: forceShare);
        if (image is not IBackingFileRecord record)
        {
            throw new CliException($"Could not change the backing file to '{backing}': Operation not supported");
        }

        if (safe)
        {
            await using var newChain = newBacking is null ? null
                : await ImgContext.OpenAsync(ImageOpener.ResolveBackingPath(file, newBacking), backingFormat, readOnly: true, forceShare: forceShare);
            await ProgressDisplay.RunAsync(context, parsed.Has("p"), "rebase", progress => BackingDifferences.CopyAsync(image, newChain, progress));
        }

        await record.ChangeBackingFileAsync(newBacking, newBacking is null ? null : backingFormat);
        await image.FlushAsync();
        return 0;
    }
}
