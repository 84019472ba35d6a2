using Strata.Block;

namespace Strata.Cli.Img;

/// <summary><c>strata img compare</c>: do two images read the same, as the guest would see them?</summary>
public static class CompareCommand
{
    /// <summary>Images differ (content, or size or allocation in strict mode).</summary>
    public const int Different = 1;

    /// <summary>The comparison could not be made.</summary>
    public const int Failed = 2;

    private const int Chunk = 2 * 1024 * 1024;

    private const string Synopsis = "compare [-f FMT] [-F FMT] [-s] [-q] [-p] [-U] FILE1 FILE2";

    private static readonly ArgParser Parser = new("f:F:sqpU", "force-share");

    public static ImgSubcommand Definition { get; } = new("compare", Synopsis, ManualText.Build(
        "compare", "check whether two images have the same content", "strata img " + Synopsis,
        "Compares the guest-visible content of FILE1 and FILE2 (backing chains included). Runs that\n"
        + "read as zeroes in both are skipped without reading. Images of different sizes are identical\n"
        + "when the larger one's extra area reads as zeroes, unless -s is given.",
        [
            ("-f FMT", "FILE1's format; probed when omitted."),
            ("-F FMT", "FILE2's format; probed when omitted."),
            ("-s", "Strict: images of different sizes, or with a run allocated in one and not the other,\n"
                + "differ."),
            ("-q", "Quiet: print nothing but errors."),
            ("-p", "Accepted for compatibility; no progress is shown."),
            ("-U, --force-share", "Open the images even while another process writes them."),
        ],
        "0 the images are identical, 1 they differ, 2 an error occurred (such as a file that cannot\nbe opened)."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        context.Quiet = parsed.Has("q");
        bool strict = parsed.Has("s");
        if (parsed.Positionals.Count != 2)
        {
            throw new CliException(parsed.Positionals.Count < 2 ? "Expecting two image file names" : $"Unexpected argument: {parsed.Positionals[2]}");
        }

        try
        {
            bool forceShare = ImgContext.ForceShare(parsed);
            await using var a = await ImgContext.OpenAsync(parsed.Positionals[0], parsed.Get("f"), readOnly: true, forceShare: forceShare);
            await using var b = await ImgContext.OpenAsync(parsed.Positionals[1], parsed.Get("F"), readOnly: true, forceShare: forceShare);
            return await CompareAsync(a, b, strict, context);
        }
        catch (Exception e) when (e is BlockException or CliException or IOException)
        {
            context.Err.WriteLine(ImgTool.Prefix + ImgTool.OneLine(e.Message));
            return Failed;
        }
    }

    /// <summary>Compares two open images; prints qemu-img's verdict and returns its exit code.</summary>
    public static async Task<int> CompareAsync(IBlockNode a, IBlockNode b, bool strict, ImgContext context)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(context);
        if (a.Size != b.Size)
        {
            if (strict)
            {
                context.Say("Strict mode: Image size mismatch!");
                return Different;
            }

            context.Say("Warning: Image size mismatch!");
        }

        var bufferA = new byte[Chunk];
        var bufferB = new byte[Chunk];
        long common = Math.Min(a.Size, b.Size);
        long offset = 0;
        while (offset < common)
        {
            var sa = await ChainStatus.GetAsync(a, offset, Math.Min(common - offset, Chunk));
            var sb = await ChainStatus.GetAsync(b, offset, sa.Length);
            int length = (int)Math.Min(sa.Length, sb.Length);
            if (strict && (sa.IsPresent != sb.IsPresent || sa.IsZero != sb.IsZero))
            {
                context.Say($"Strict mode: Offset {offset} block status mismatch!");
                return Different;
            }

            if (!(sa.IsZero && sb.IsZero))
            {
                var spanA = bufferA.AsMemory(0, length);
                var spanB = bufferB.AsMemory(0, length);
                await ReadOrZeroAsync(a, sa, offset, spanA);
                await ReadOrZeroAsync(b, sb, offset, spanB);
                int at = spanA.Span.CommonPrefixLength(spanB.Span);
                if (at < length)
                {
                    return Mismatch(context, offset + at);
                }
            }

            offset += length;
        }

        // The larger image's extra area must read as zeroes (qemu-img's rule for unequal sizes).
        var larger = a.Size > b.Size ? a : b;
        while (offset < larger.Size)
        {
            var s = await ChainStatus.GetAsync(larger, offset, Math.Min(larger.Size - offset, Chunk));
            int length = (int)s.Length;
            if (!s.IsZero)
            {
                var span = bufferA.AsMemory(0, length);
                await larger.ReadAsync(offset, span);
                int at = span.Span.IndexOfAnyExcept((byte)0);
                if (at >= 0)
                {
                    return Mismatch(context, offset + at);
                }
            }

            offset += length;
        }

        context.Say("Images are identical.");
        return 0;
    }

    private static async ValueTask ReadOrZeroAsync(IBlockNode node, ChainExtent status, long offset, Memory<byte> buffer)
    {
        if (status.IsZero)
        {
            buffer.Span.Clear();
        }
        else
        {
            await node.ReadAsync(offset, buffer);
        }
    }

    /// <summary>qemu-img reports the 512-byte sector where the first difference is.</summary>
    private static int Mismatch(ImgContext context, long offset)
    {
        context.Say($"Content mismatch at offset {offset & ~511L}!");
        return Different;
    }
}
