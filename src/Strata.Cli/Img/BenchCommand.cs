using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Strata.Block;

namespace Strata.Cli.Img;

/// <summary>
/// <c>strata img bench</c>: qemu-img bench's options and output. COUNT requests of BUFSIZE bytes,
/// DEPTH of them in flight, at offsets that start at OFFSET, advance by STEP and wrap at the end.
/// </summary>
/// <remarks>
/// The loop is DEPTH asynchronous workers pulling request numbers from one counter; each owns one
/// aligned buffer for the whole run, so no request allocates. A request's offset is computed from
/// its number, so the workers share nothing but the counter.
/// </remarks>
public static class BenchCommand
{
    private const string Synopsis = "bench [-c COUNT] [-d DEPTH] [-f FMT] [-n] [-o OFFSET] [-s BUFSIZE] [-S STEP] [-t CACHE] [-w] "
        + "[--pattern=N] [--flush-interval=N] [--no-drain] [-q] [-U] FILE";

    private const int Alignment = 4096;

    private static readonly ArgParser Parser = new("c:d:f:no:s:S:t:wqi:U", "pattern=", "flush-interval=", "no-drain", "force-share", "image-opts");

    public static ImgSubcommand Definition { get; } = new("bench", Synopsis, ManualText.Build(
        "bench", "measure the speed of simple I/O on an image", "strata img " + Synopsis,
        "Sends COUNT read (or, with -w, write) requests of BUFSIZE bytes, keeping DEPTH of them in\n"
        + "flight, and prints the time the run took. The first request is at OFFSET, each next one STEP\n"
        + "bytes further, wrapping to the start at the end of the image.",
        [
            ("-c COUNT", "Number of requests (default 75000)."),
            ("-d DEPTH", "Requests in flight at once (default 64)."),
            ("-f FMT", "The image's format; probed when omitted."),
            ("-n", "Bypass the host page cache (O_DIRECT), as -t none."),
            ("-o OFFSET", "Offset of the first request (default 0); takes size suffixes."),
            ("-s BUFSIZE", "Bytes per request (default 4096); takes size suffixes."),
            ("-S STEP", "Distance between request offsets (default BUFSIZE); takes size suffixes."),
            ("-t CACHE", "none or directsync (O_DIRECT), writeback, writethrough or unsafe (page cache)."),
            ("-w", "Write instead of read (the buffer is filled with --pattern)."),
            ("--pattern=N", "Byte written by -w (default 0)."),
            ("--flush-interval=N", "Flush after every N requests (N at least DEPTH unless --no-drain)."),
            ("--no-drain", "Flush without waiting for the requests in flight first."),
            ("-q", "Quiet: print nothing but errors."),
            ("-U, --force-share", "Read the image even while another process writes it (reads only; -w\n"
                + "still needs the image to itself), as with qemu-img."),
        ],
        "0 on success, 1 on any error (including a failed request)."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        context.Quiet = parsed.Has("q");
        long count = parsed.Get("c") is { } c ? ImgContext.ParseNumber(c, "request count", 0, int.MaxValue) : 75000;
        int depth = parsed.Get("d") is { } d ? (int)ImgContext.ParseNumber(d, "queue depth", 1, int.MaxValue) : 64;
        long offset = parsed.Get("o") is { } o ? ParseSize(o, "offset") : 0;
        long bufferSize = parsed.Get("s") is { } s ? ParseSize(s, "buffer size") : 4096;
        if (bufferSize <= 0 || bufferSize > int.MaxValue / 2)
        {
            throw new CliException("Invalid buffer size specified");
        }

        long step = parsed.Get("S") is { } st ? ParseSize(st, "step size") : 0;
        int pattern = parsed.Get("pattern") is { } p ? (int)ImgContext.ParseNumber(p, "pattern byte", 0, 255) : 0;
        long flushInterval = parsed.Get("flush-interval") is { } fi ? ImgContext.ParseNumber(fi, "flush interval", 0, int.MaxValue) : 0;
        bool drain = !parsed.Has("no-drain");
        bool write = parsed.Has("w");
        bool direct = parsed.Has("n") || parsed.Get("t") switch
        {
            null or "writeback" or "writethrough" or "unsafe" => false,
            "none" or "directsync" => true,
            var mode => throw new CliException($"Invalid cache mode '{mode}'"),
        };
        if (parsed.Get("i") is { } aio && aio is not ("threads" or "native" or "io_uring"))
        {
            throw new CliException($"Invalid aio option: {aio}");
        }

        if (!drain && flushInterval == 0)
        {
            throw new CliException("--no-drain requires a flush interval");
        }

        if (flushInterval > 0 && flushInterval < depth && drain)
        {
            throw new CliException("Flush interval can't be smaller than depth");
        }

        if (parsed.Positionals.Count != 1)
        {
            throw new CliException(parsed.Positionals.Count == 0 ? "Expecting one image file name" : $"Unexpected argument: {parsed.Positionals[1]}");
        }

        if (step == 0)
        {
            step = bufferSize;
        }

        await using var node = await ImgContext.OpenAsync(parsed.Positionals[0], parsed.Get("f"), readOnly: !write, direct: direct,
            forceShare: ImgContext.ForceShare(parsed));
        if (offset + bufferSize > node.Size)
        {
            throw new CliException($"Request at offset {offset} of {bufferSize} bytes passes the end of the image ({node.Size} bytes)");
        }

        var run = new BenchRun(node, count, depth, (int)bufferSize, offset, step, write, (byte)pattern, flushInterval, drain);
        context.Say($"Sending {count} {(write ? "write" : "read")} requests, {bufferSize} bytes each, {depth} in parallel (starting at offset {offset}, step size {step})");
        if (flushInterval > 0)
        {
            context.Say($"Sending flush every {flushInterval} requests");
        }

        var clock = Stopwatch.StartNew();
        try
        {
            await run.RunAsync();
        }
        catch (BlockException e)
        {
            throw new CliException($"Failed request: {e.Message}");
        }

        clock.Stop();
        context.Say(string.Create(CultureInfo.InvariantCulture, $"Run completed in {clock.Elapsed.TotalSeconds:F3} seconds."));
        return 0;
    }

    private static long ParseSize(string text, string what) => ImageCreatorSize(text) ?? throw new CliException($"Invalid {what} specified");

    private static long? ImageCreatorSize(string text) => Formats.ImageCreator.TryParseSize(text, out long value) ? value : null;

    /// <summary>A buffer in the pinned heap starting at an <see cref="Alignment"/> boundary, as O_DIRECT needs.</summary>
    internal static Memory<byte> AlignedBuffer(int size)
    {
        byte[] array = GC.AllocateUninitializedArray<byte>(size + Alignment, pinned: true);
        long address = Marshal.UnsafeAddrOfPinnedArrayElement(array, 0).ToInt64();
        int skip = (int)((Alignment - (address % Alignment)) % Alignment);
        return array.AsMemory(skip, size);
    }
}
