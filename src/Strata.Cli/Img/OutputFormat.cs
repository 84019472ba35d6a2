using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Strata.Cli.Img;

/// <summary>The <c>--output=human|json</c> switch and qemu-img's JSON layout (four-space indent).</summary>
public static class OutputFormat
{
    public static bool IsJson(string? value) => value switch
    {
        null or "human" => false,
        "json" => true,
        _ => throw new CliException($"--output must be used with human or json as argument."),
    };

    public static string Json(Action<Utf8JsonWriter> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions
        {
            Indented = true,
            IndentSize = 4,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            write(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
