using System.Globalization;
using Strata.Block;
using Strata.Formats;

namespace Strata.Cli.Img;

/// <summary>Where a command writes, and the helpers every command shares.</summary>
public sealed class ImgContext(TextWriter output, TextWriter error)
{
    public TextWriter Out { get; } = output;

    public TextWriter Err { get; } = error;

    /// <summary>-q: print nothing but errors.</summary>
    public bool Quiet { get; set; }

    /// <summary>Writes a line unless quiet.</summary>
    public void Say(string line)
    {
        if (!Quiet)
        {
            Out.WriteLine(line);
        }
    }

    /// <summary>Opens an image (and by default its backing chain, read-only).</summary>
    public static async ValueTask<IBlockNode> OpenAsync(string path, string? format, bool readOnly, bool openBacking = true, bool direct = false)
    {
        if (format is not null)
        {
            CheckFormat(format);
        }

        return await ImageOpener.OpenAsync(path, new ImageOpenOptions
        {
            Format = format,
            ReadOnly = readOnly,
            OpenBacking = openBacking,
            Direct = direct,
        });
    }

    public static void CheckFormat(string format)
    {
        if (format is not (ImageOpener.Raw or ImageOpener.Qcow2Format))
        {
            throw new CliException($"Unknown file format '{format}'");
        }
    }

    /// <summary>A size argument, or the one-line error qemu-img gives for a bad one.</summary>
    public static long ParseSize(string text, string what = "image size")
    {
        if (!ImageCreator.TryParseSize(text, out long size))
        {
            throw new CliException($"Invalid {what} specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        }

        return size;
    }

    /// <summary>A non-negative integer option, or "Invalid {what} specified".</summary>
    public static long ParseNumber(string? text, string what, long min = 0, long max = long.MaxValue)
    {
        if (text is null || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value < min || value > max)
        {
            throw new CliException($"Invalid {what} specified");
        }

        return value;
    }

    /// <summary>qemu's size_to_str: three significant digits and a binary unit ("10 GiB", "196 KiB", "0.977 MiB").</summary>
    public static string HumanSize(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        double scaled = bytes / (1000.0 / 1024.0);
        int unit = 0;
        if (scaled >= 1)
        {
            // frexp(scaled) has exponent ILogB + 1; qemu takes (exponent - 1) / 10 as the unit.
            unit = Math.Min(Math.ILogB(scaled) / 10, units.Length - 1);
        }

        double value = bytes / Math.Pow(1024, unit);
        string text = value.ToString("G3", CultureInfo.InvariantCulture).Replace("E+0", "e+0", StringComparison.Ordinal).Replace("E+", "e+", StringComparison.Ordinal);
        return $"{text} {units[unit]}";
    }

    /// <summary>Disposes a node, ignoring nothing: a failed final flush is an error too.</summary>
    public static async ValueTask CloseAsync(IBlockNode? node)
    {
        if (node is not null)
        {
            await node.DisposeAsync();
        }
    }
}
