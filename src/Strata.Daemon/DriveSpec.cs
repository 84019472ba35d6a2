using System.Text;
using Strata.Block;
using Strata.Block.Drivers;
using Strata.Formats;

namespace Strata.Daemon;

/// <summary>
/// One <c>--drive id=NAME,file=LOCATOR[,format=FMT][,readonly=on][,cache=writeback|none]
/// [,werror=enospc|stop|report][,rerror=report|stop]</c>, QEMU's key=value spelling (a comma inside a
/// value is written twice, as in QEMU). QEMU's <c>cache.direct=on|off</c> is read too: for a drive it
/// means the same as cache=none|writeback (the last of the two given wins). FMT is a format of
/// <see cref="Drivers"/>. werror and rerror default as QEMU's -drive does (blockdev.c: enospc for
/// writes, report for reads); QEMU's "ignore" is refused (docs/serve.md, "When the disk fails").
/// </summary>
public sealed record DriveSpec(string Id, string File, string? Format = null, bool ReadOnly = false, bool Direct = false)
{
    // QEMU's -drive defaults (blockdev.c): werror=enospc, rerror=report.
    private const IoErrorPolicy DefaultWriteErrorPolicy = IoErrorPolicy.StopOnNoSpace;
    private const IoErrorPolicy DefaultReadErrorPolicy = IoErrorPolicy.Report;

    /// <summary>What a failed guest write does (werror=).</summary>
    public IoErrorPolicy WriteErrorPolicy { get; init; } = DefaultWriteErrorPolicy;

    /// <summary>What a failed guest read does (rerror=).</summary>
    public IoErrorPolicy ReadErrorPolicy { get; init; } = DefaultReadErrorPolicy;

    /// <summary>The drivers that open the drive's image: <see cref="StandardDrivers.Registry"/> unless given.</summary>
    public DriverRegistry Drivers { get; init; } = StandardDrivers.Registry;

    /// <summary>The id <c>-hda</c> gives its drive, as QEMU names its first IDE disk.</summary>
    public const string HdaId = "ide0-hd0";

    /// <summary>Parses the value of <c>--drive</c>; throws <see cref="FormatException"/> with a one-line message.</summary>
    public static DriveSpec Parse(string text, DriverRegistry? drivers = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        drivers ??= StandardDrivers.Registry;
        string? id = null, file = null, format = null;
        bool readOnly = false, direct = false;
        var writeError = DefaultWriteErrorPolicy;
        var readError = DefaultReadErrorPolicy;
        foreach (string pair in QemuOptionList.Split(text))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new FormatException($"--drive '{text}': expected key=value, got '{pair}'");
            }

            string key = pair[..eq], value = pair[(eq + 1)..];
            switch (key)
            {
                case "id":
                    id = value;
                    break;
                case "file":
                    file = value;
                    break;
                case "format":
                    if (!drivers.HasFormat(value))
                    {
                        throw new FormatException($"--drive '{text}': unknown format '{value}' ({drivers.FormatNames})");
                    }

                    format = value;
                    break;
                case "readonly":
                    readOnly = ParseSwitch(text, key, value);
                    break;
                case "cache":
                    direct = value switch
                    {
                        "writeback" => false,
                        "none" => true,
                        _ => throw new FormatException($"--drive '{text}': cache must be writeback or none"),
                    };
                    break;
                case "cache.direct":
                    direct = ParseSwitch(text, key, value);
                    break;
                case "werror":
                    writeError = ParseErrorPolicy(text, key, value, "enospc, stop or report");
                    break;
                case "rerror":
                    readError = ParseErrorPolicy(text, key, value, "report or stop");
                    break;
                default:
                    throw new FormatException($"--drive '{text}': unknown key '{key}' (id, file, format, readonly, cache, cache.direct, werror, rerror)");
            }
        }

        if (string.IsNullOrEmpty(file))
        {
            throw new FormatException($"--drive '{text}': file=PATH is required");
        }

        if (string.IsNullOrEmpty(id))
        {
            throw new FormatException($"--drive '{text}': id=NAME is required (it is the export name)");
        }

        if (Encoding.UTF8.GetByteCount(id) > 4096)
        {
            throw new FormatException("--drive: id is longer than 4096 bytes, the NBD limit for export names");
        }

        return new DriveSpec(id, file, format, readOnly, direct) { Drivers = drivers, WriteErrorPolicy = writeError, ReadErrorPolicy = readError };
    }

    /// <summary>A werror= or rerror= value (QEMU's blockdev.c parse_block_error_action: enospc is for writes only).</summary>
    private static IoErrorPolicy ParseErrorPolicy(string text, string key, string value, string allowed) => value switch
    {
        "report" => IoErrorPolicy.Report,
        "stop" => IoErrorPolicy.Stop,
        "enospc" when key == "werror" => IoErrorPolicy.StopOnNoSpace,
        "ignore" => throw new FormatException(
            $"--drive '{text}': {key}=ignore is not supported: it would answer a failed request as done ({allowed})"),
        _ => throw new FormatException($"--drive '{text}': {key} must be {allowed}"),
    };

    private static bool ParseSwitch(string text, string key, string value) =>
        QemuOptionList.TryParseSwitch(value, out bool on) ? on : throw new FormatException($"--drive '{text}': {key} must be on or off");
}
