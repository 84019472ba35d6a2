using Strata.Block;
using Strata.Block.Copy;
using Strata.Formats;

namespace Strata.Cli.Img;

/// <summary><c>strata img commit</c>: merge an overlay (and the layers below it) into its base, offline.</summary>
public static class CommitCommand
{
    private const string Synopsis = "commit [-q] [-p] [-f FMT] [-b BASE] [-d] FILE";

    private static readonly ArgParser Parser = new("qpf:b:dt:r:", "object=");

    public static ImgSubcommand Definition { get; } = new("commit", Synopsis, ManualText.Build(
        "commit", "copy an overlay's changes into its backing image", "strata img " + Synopsis,
        "Copies every run that FILE, or a layer between FILE and BASE, allocates into BASE (by default\n"
        + "FILE's backing image), then empties FILE so that it reads entirely from its backing again.\n"
        + "With -b, the layers between FILE and BASE no longer read correctly afterwards, so -b implies\n"
        + "-d as with qemu-img.",
        [
            ("-f FMT", "FILE's format; probed when omitted."),
            ("-b BASE", "The image to commit into; must be in FILE's backing chain."),
            ("-d", "Do not empty FILE afterwards (it is about to be deleted)."),
            ("-p", "Show progress."),
            ("-q", "Quiet: print nothing but errors."),
            ("-t CACHE, -r RATE", "Accepted for compatibility with qemu-img; no effect."),
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

        string? basePath = parsed.Get("b");
        await ProgressDisplay.RunAsync(context, parsed.Has("p"), "commit", progress =>
            CommitAsync(parsed.Positionals[0], parsed.Get("f"), basePath, drop: parsed.Has("d") || basePath is not null, progress));
        context.Say("Image committed.");
        return 0;
    }

    /// <summary>
    /// The offline commit (<see cref="OfflineCommit"/>): every run allocated above the base is copied
    /// into the base, then the top is emptied unless <paramref name="drop"/>.
    /// </summary>
    public static async Task CommitAsync(string topPath, string? format, string? basePath, bool drop, Action<double> progress)
    {
        // qemu-img commit holds the top for writing even when it will not empty it.
        await using var top = await ImgContext.OpenAsync(topPath, format, readOnly: drop, permissions: ImgContext.Writing);
        if (top.Backing is null)
        {
            throw new CliException("Image does not have a backing file");
        }

        var baseNode = basePath is null ? top.Backing
            : top.Backing.FindByFile(ImageOpener.FullName(basePath), ImageOpener.FullName) ?? throw new CliException($"Did not find '{basePath}' in the backing chain of '{topPath}'");

        // The base gets a writable open of its own, which takes over the read-only one's locks (docs/locking.md).
        await OfflineCommit.RunAsync(top, baseNode, (node, cancellationToken) =>
            ImageOpener.ReopenWritableAsync(node, ImgContext.Writing.ForBacking(), ImgContext.Writing, new ImageOpenOptions(), cancellationToken),
            emptyTop: !drop, progress);
    }
}
