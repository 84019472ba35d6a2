using System.Text;
using Strata.Block;

namespace Strata.Cli.Img;

/// <summary><c>strata img map</c>: where each guest range of an image and its backing chain lives.</summary>
public static class MapCommand
{
    private const string Synopsis = "map [-f FMT] [--output=human|json] [-U] FILE";

    private static readonly ArgParser Parser = new("f:U", "output=", "force-share");

    public static ImgSubcommand Definition { get; } = new("map", Synopsis, ManualText.Build(
        "map", "show where an image's data is stored", "strata img " + Synopsis,
        "Walks the backing chain and prints, for each run of guest bytes, the layer that decides its\n"
        + "content. Text output lists the data runs (\"Offset Length Mapped to File\"); JSON lists every\n"
        + "run with start, length, depth, present, zero, data and, when known, the host offset.\n"
        + "Of a dirty_bitmap file it lists the dirty extents (JSON: every run with start, length and dirty);\n"
        + "while a tracker holds the file it refuses, unless -U is given.",
        [
            ("-f FMT", "The image's format; probed when omitted."),
            ("--output=human|json", "Text (default) or JSON, as qemu-img map prints them."),
            ("-U, --force-share", "Open the image even while another process writes it."),
        ],
        "0 on success, 1 on any error (text output of compressed clusters is one)."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        bool json = OutputFormat.IsJson(parsed.Get("output"));
        if (parsed.Positionals.Count != 1)
        {
            throw new CliException(parsed.Positionals.Count == 0 ? "Expecting one image file name" : $"Unexpected argument: {parsed.Positionals[1]}");
        }

        string file = parsed.Positionals[0];
        await using var top = await ImgContext.OpenAsync(file, parsed.Get("f"), readOnly: true, forceShare: ImgContext.ForceShare(parsed));
        if (top is Block.Bitmaps.IBitmapImage bitmap)
        {
            BitmapMap.Write(context, bitmap, file, json, ImgContext.ForceShare(parsed));
            return 0;
        }

        var names = LayerNames(top, file);
        var text = new StringBuilder();
        if (json)
        {
            text.Append('[');
        }
        else
        {
            text.Append($"{"Offset",-16}{"Length",-16}{"Mapped to",-16}File\n");
        }

        bool first = true;
        MapEntry? pending = null;
        long offset = 0;
        while (offset < top.Size)
        {
            var extent = await ChainStatus.GetAsync(top, offset, top.Size - offset);
            var entry = ToEntry(extent, names);
            if (pending is { } p && entry.Continues(p))
            {
                pending = p with { Length = p.Length + entry.Length };
            }
            else
            {
                if (pending is { } done)
                {
                    Write(text, done, json, ref first);
                }

                pending = entry;
            }

            offset = extent.End;
        }

        if (pending is { } last)
        {
            Write(text, last, json, ref first);
        }

        if (json)
        {
            text.Append("]\n");
        }

        context.Out.Write(text.ToString());
        return 0;
    }

    /// <summary>
    /// The name qemu-img shows for each layer: the top as given, each backing file as recorded,
    /// joined to the folder of the image above it without normalizing.
    /// </summary>
    private static Dictionary<IBlockNode, string> LayerNames(IBlockNode top, string file)
    {
        var names = new Dictionary<IBlockNode, string>(ReferenceEqualityComparer.Instance);
        string name = file;
        foreach (var node in top.Layers())
        {
            names[node] = name;
            if (node is IBackingFileRecord { BackingFileName: { } backing })
            {
                name = ImageFacts.JoinBackingName(name, backing);
            }
        }

        return names;
    }

    private static MapEntry ToEntry(ChainExtent e, Dictionary<IBlockNode, string> names)
    {
        if (e.Node is not { } node)
        {
            // No layer describes the run: qemu-img reports the depth of the bottom layer.
            return new MapEntry(e.Offset, e.Length, Math.Max(0, e.Depth - 1), Present: false, Zero: true, Data: false, Offset: null, FileName: null);
        }

        bool zero = (e.State & BlockState.Zero) != 0;
        bool data = (e.State & BlockState.Data) != 0;
        long? hostOffset = node.DriverName == Formats.Raw.RawFormatDriver.FormatName ? e.Offset
            : (e.State & BlockState.Compressed) == 0 && e.HostOffset >= 0 ? e.HostOffset : null;
        return new MapEntry(e.Offset, e.Length, e.Depth, Present: true, zero, data, hostOffset, names.TryGetValue(node, out string? name) ? name : node.FileName);
    }

    private static void Write(StringBuilder text, MapEntry e, bool json, ref bool first)
    {
        if (json)
        {
            if (!first)
            {
                text.Append(",\n");
            }

            first = false;
            text.Append($"{{ \"start\": {e.Start}, \"length\": {e.Length}, \"depth\": {e.Depth}, \"present\": {Bool(e.Present)}, \"zero\": {Bool(e.Zero)}, \"data\": {Bool(e.Data)}");
            if (e.Offset is { } o)
            {
                text.Append($", \"offset\": {o}");
            }

            text.Append('}');
            return;
        }

        if (e.Data && e.Offset is null)
        {
            throw new CliException("File contains external, encrypted or compressed clusters.");
        }

        if (e.Data && !e.Zero)
        {
            text.Append($"{Hex(e.Start),-16}{Hex(e.Length),-16}{Hex(e.Offset ?? 0),-16}{e.FileName}\n");
        }
    }

    /// <summary>C's "%#x": "0" for zero, "0x…" otherwise.</summary>
    internal static string Hex(long value) => value == 0 ? "0" : $"0x{value:x}";

    private static string Bool(bool value) => value ? "true" : "false";
}
