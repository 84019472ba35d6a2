namespace Strata.Cli.Img;

/// <summary><c>strata img resize</c>: change an image's virtual size.</summary>
public static class ResizeCommand
{
    private const string Synopsis = "resize [-f FMT] [-q] [--shrink] FILE [+|-]SIZE";

    // No -U: qemu-img resize has none, as a writer never shares.
    private static readonly ArgParser Parser = new("f:q", "shrink", "preallocation=");

    public static ImgSubcommand Definition { get; } = new("resize", Synopsis, ManualText.Build(
        "resize", "change the virtual size of an image", "strata img " + Synopsis,
        "Sets FILE's virtual size to SIZE, or grows (+SIZE) or shrinks (-SIZE) it by that much. Raw\n"
        + "images grow and shrink; qcow2 images grow. Shrinking deletes the data past the new end, so it\n"
        + "needs --shrink.",
        [
            ("-f FMT", "FILE's format; probed when omitted."),
            ("--shrink", "Allow the size to go down."),
            ("-q", "Quiet: print nothing but errors."),
        ],
        "0 on success, 1 on any error."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        // The size is taken off the end first so that "-1G" is not read as an option (qemu-img does the same).
        if (args.Count < 2)
        {
            throw new CliException("Expecting image file name and size");
        }

        string sizeText = args[^1];
        var parsed = Parser.Parse(args.Take(args.Count - 1).ToArray());
        context.Quiet = parsed.Has("q");
        if (parsed.Get("preallocation") is { } prealloc && prealloc != "off")
        {
            throw new CliException($"Unsupported preallocation mode '{prealloc}'");
        }

        if (parsed.Positionals.Count != 1)
        {
            throw new CliException(parsed.Positionals.Count == 0 ? "Expecting image file name and size" : $"Unexpected argument: {parsed.Positionals[1]}");
        }

        await using var image = await ImgContext.OpenAsync(parsed.Positionals[0], parsed.Get("f"), readOnly: false, openBacking: false,
            permissions: ImgContext.Writing with { Held = ImgContext.Writing.Held | Block.BlockPermissions.Resize });
        int sign = sizeText.StartsWith('+') ? 1 : sizeText.StartsWith('-') ? -1 : 0;
        long amount = ImgContext.ParseSize(sign == 0 ? sizeText : sizeText[1..]);
        long newSize = sign == 0 ? amount : image.Size + (sign * amount);
        if (newSize <= 0)
        {
            throw new CliException("New image size must be positive");
        }

        if (newSize < image.Size)
        {
            if (!parsed.Has("shrink"))
            {
                throw new CliException("Use the --shrink option to perform a shrink operation.");
            }

            if (image.DriverName != "raw")
            {
                throw new CliException($"Shrinking {image.DriverName} images is not supported");
            }
        }

        await image.ResizeAsync(newSize);
        await image.FlushAsync();
        context.Say("Image resized.");
        return 0;
    }
}
