using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Strata.Cli.Img;

/// <summary><c>strata img info</c>: the facts of an image, laid out as qemu-img 7.2 prints them.</summary>
public static class InfoCommand
{
    private const string Synopsis = "info [-f FMT] [--output=human|json] [--backing-chain] [-U] FILE";

    private static readonly ArgParser Parser = new("f:U", "output=", "backing-chain", "force-share");

    public static ImgSubcommand Definition { get; } = new("info", Synopsis, ManualText.Build(
        "info", "show an image's format, sizes and header", "strata img " + Synopsis,
        "Prints the image's format, virtual size, disk usage, cluster size, backing file and the\n"
        + "format-specific header fields, with the same fields and layout as qemu-img info. The backing\n"
        + "file is not opened unless --backing-chain is given.",
        [
            ("-f FMT", "The image's format; probed when omitted."),
            ("--output=human|json", "Text (default) or JSON with qemu-img's keys."),
            ("--backing-chain", "Also describe every image of the backing chain (JSON: an array)."),
            ("-U, --force-share", "Open the image even while another process writes it (what is read may be\n"
                + "inconsistent). Without it a qcow2 image being written is refused, as qemu-img does."),
        ],
        "0 on success, 1 on any error."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        bool json = OutputFormat.IsJson(parsed.Get("output"));
        if (parsed.Positionals.Count != 1)
        {
            throw new CliException(parsed.Positionals.Count == 0 ? "Expecting one image file name" : $"Unexpected argument: {parsed.Positionals[1]}");
        }

        bool chain = parsed.Has("backing-chain");
        var images = await ImageFacts.ReadChainAsync(parsed.Positionals[0], parsed.Get("f"), chain, ImgContext.ForceShare(parsed));
        if (json)
        {
            context.Out.WriteLine(OutputFormat.Json(writer =>
            {
                if (chain)
                {
                    writer.WriteStartArray();
                }

                foreach (var image in images)
                {
                    WriteJson(writer, image);
                }

                if (chain)
                {
                    writer.WriteEndArray();
                }
            }));
        }
        else
        {
            var text = new StringBuilder();
            for (int i = 0; i < images.Count; i++)
            {
                if (i > 0)
                {
                    text.Append('\n');
                }

                WriteHuman(text, images[i]);
            }

            context.Out.Write(text.ToString());
        }

        return 0;
    }

    private static void WriteHuman(StringBuilder text, ImageFacts image)
    {
        text.Append("image: ").Append(image.FileName).Append('\n');
        text.Append("file format: ").Append(image.Format).Append('\n');
        text.Append($"virtual size: {ImgContext.HumanSize(image.VirtualSize)} ({image.VirtualSize} bytes)\n");
        text.Append("disk size: ").Append(ImgContext.HumanSize(image.ActualSize)).Append('\n');
        var info = image.FormatInfo;
        if (info?.ClusterSize is { } clusterSize)
        {
            text.Append($"cluster_size: {clusterSize}\n");
        }

        if (image.BackingFile is { } backing)
        {
            text.Append("backing file: ").Append(backing);
            if (image.FullBackingFile != backing)
            {
                text.Append(" (actual path: ").Append(image.FullBackingFile).Append(')');
            }

            text.Append('\n');
            if (image.BackingFormat is { } backingFormat)
            {
                text.Append("backing file format: ").Append(backingFormat).Append('\n');
            }
        }

        if (info is null)
        {
            return;
        }

        if (info.Dirty)
        {
            text.Append("cleanly shut down: no\n");
        }

        // qemu-img prints format-specific data generically: QAPI names with '-' shown as ' '.
        text.Append("Format specific information:\n");
        WriteHumanObject(text, info.Specific, 4);
    }

    // qemu's dump_qobject: "name: value", a list or object under its name indented four more, list items as "[i]:".
    private static void WriteHumanObject(StringBuilder text, IEnumerable<KeyValuePair<string, object>> fields, int indent)
    {
        foreach (var (name, value) in fields)
        {
            text.Append(' ', indent).Append(name.Replace('-', ' ')).Append(':');
            WriteHumanValue(text, value, indent);
        }
    }

    private static void WriteHumanValue(StringBuilder text, object value, int indent)
    {
        switch (value)
        {
            case IEnumerable<KeyValuePair<string, object>> fields:
                text.Append('\n');
                WriteHumanObject(text, fields, indent + 4);
                break;
            case System.Collections.IEnumerable items and not string:
                text.Append('\n');
                int i = 0;
                foreach (object item in items)
                {
                    text.Append(' ', indent + 4).Append(CultureInfo.InvariantCulture, $"[{i++}]:");
                    WriteHumanValue(text, item, indent + 4);
                }

                break;
            default:
                text.Append(' ').Append(value switch
                {
                    bool b => Bool(b),
                    long n => n.ToString(CultureInfo.InvariantCulture),
                    _ => value.ToString(),
                }).Append('\n');
                break;
        }
    }

    /// <summary>qemu-img 7.2's keys, in the order it prints them.</summary>
    private static void WriteJson(Utf8JsonWriter writer, ImageFacts image)
    {
        var info = image.FormatInfo;
        writer.WriteStartObject();
        if (image.BackingFile is not null && image.BackingFormat is { } backingFormat)
        {
            writer.WriteString("backing-filename-format", backingFormat);
        }

        writer.WriteNumber("virtual-size", image.VirtualSize);
        writer.WriteString("filename", image.FileName);
        if (info?.ClusterSize is { } clusterSize)
        {
            writer.WriteNumber("cluster-size", clusterSize);
        }

        writer.WriteString("format", image.Format);
        writer.WriteNumber("actual-size", image.ActualSize);
        if (info is not null)
        {
            writer.WriteStartObject("format-specific");
            writer.WriteString("type", image.Format);
            writer.WritePropertyName("data");
            WriteJsonValue(writer, info.Specific);
            writer.WriteEndObject();
        }

        if (image.BackingFile is { } backing)
        {
            writer.WriteString("full-backing-filename", image.FullBackingFile);
            writer.WriteString("backing-filename", backing);
        }

        writer.WriteBoolean("dirty-flag", info?.Dirty ?? false);
        writer.WriteEndObject();
    }

    private static void WriteJsonValue(Utf8JsonWriter writer, object value)
    {
        switch (value)
        {
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case long n:
                writer.WriteNumberValue(n);
                break;
            case IEnumerable<KeyValuePair<string, object>> fields:
                writer.WriteStartObject();
                foreach (var (name, field) in fields)
                {
                    writer.WritePropertyName(name);
                    WriteJsonValue(writer, field);
                }

                writer.WriteEndObject();
                break;
            case System.Collections.IEnumerable items and not string:
                writer.WriteStartArray();
                foreach (object item in items)
                {
                    WriteJsonValue(writer, item);
                }

                writer.WriteEndArray();
                break;
            default:
                writer.WriteStringValue(value.ToString());
                break;
        }
    }

    private static string Bool(bool value) => value ? "true" : "false";
}
