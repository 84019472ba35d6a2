using Strata.Formats;

namespace Strata.Cli.Img;

/// <summary><c>strata img create</c>: a new image of any registered format, optionally on a backing file.</summary>
public static class CreateCommand
{
    private const string Synopsis = "create [-f FMT] [-b BACKING [-F BACKING_FMT]] [-o OPTIONS] [-q] FILE [SIZE]";

    private static readonly ArgParser Parser = new("f:b:F:o:qu");

    public static ImgSubcommand Definition { get; } = new("create", Synopsis, ManualText.Build(
        "create", "create a new disk image", "strata img " + Synopsis,
        "Creates FILE of SIZE bytes in format FMT (raw by default). SIZE takes the suffixes k, K, M, G, T,\n"
        + "P, E (powers of 1024); without SIZE the backing file's virtual size is used. With -b the new\n"
        + "image is an overlay: unwritten clusters read from BACKING. A relative BACKING is relative to\n"
        + "FILE's folder. Without -F the backing file is probed once and the probed format is recorded.",
        [
            ("-f FMT", $"One of {ImgContext.Drivers.FormatNames}; raw by default."),
            ("-b BACKING", "The backing file (qcow2 only)."),
            ("-F BACKING_FMT", $"The backing file's format ({ImgContext.Drivers.FormatNames}); probed when omitted."),
            ("-o OPTIONS", "Comma-separated name=value list; '-o help' lists them. qcow2: cluster_size, compat\n"
                + "(0.10 or 1.1), refcount_bits, lazy_refcounts (on/off), compression_type (zlib/zstd),\n"
                + "backing_file, backing_fmt, size. dirty_bitmap: cluster_size (bytes of disk per bit, a power\n"
                + "of two from 512 to 64M, 64k by default), size (of the disk it tracks)."),
            ("-q", "Quiet: print nothing but errors."),
        ],
        "0 on success, 1 on any error."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        context.Quiet = parsed.Has("q");
        string format = parsed.Get("f") ?? ImageOpener.Raw;
        var driver = ImgContext.FormatDriver(format);
        var options = new List<KeyValuePair<string, string>>();
        foreach (string list in parsed.GetAll("o"))
        {
            options.AddRange(ImageCreator.ParseOptionList(list));
        }

        if (options.Exists(o => o.Key is "help" or "?"))
        {
            context.Out.Write(QemuImgCreateText.OptionHelp(driver));
            return 0;
        }

        var positionals = parsed.Positionals;
        if (positionals.Count == 0)
        {
            throw new CliException("Expecting image file name");
        }

        if (positionals.Count > 2)
        {
            throw new CliException($"Unexpected argument: {positionals[2]}");
        }

        string file = positionals[0];
        long? size = positionals.Count > 1 ? ImgContext.ParseSize(positionals[1]) : null;
        string? backingFormat = parsed.Get("F");
        if (backingFormat is not null)
        {
            ImgContext.CheckFormat(backingFormat);
        }

        try
        {
            var plan = await ImageCreator.PlanAsync(ImgContext.Drivers, file, format, size, parsed.Get("b"), backingFormat, options);
            context.Say(QemuImgCreateText.FormattingLine(file, plan));
            await using var held = await ImgContext.HoldForCreateAsync(file);
            await ImageCreator.CreateAsync(plan);
        }
        catch (Block.BlockException e)
        {
            throw new CliException($"{file}: {e.Message}");
        }

        return 0;
    }
}
