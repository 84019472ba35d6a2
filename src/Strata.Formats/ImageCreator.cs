using System.Globalization;
using System.Text;
using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Formats;

/// <summary>
/// Creates raw and qcow2 images from a format name, a size and qemu-img style <c>-o</c> options
/// (<c>cluster_size=4k,compat=1.1,…</c>), as <c>qemu-img create</c> does.
/// </summary>
/// <remarks>
/// A backing file given without a format is probed once and the probed format is recorded, so the
/// overlay never needs probing again (probing a raw image that looks like qcow2 is a known attack).
/// Without a size the backing file's virtual size is used.
/// </remarks>
public static class ImageCreator
{
    /// <summary>The first bytes of a new raw file are written so that later O_DIRECT opens can probe alignment, as qemu-img does.</summary>
    private const int RawFirstBlock = 4096;

    /// <summary>The <c>-o</c> options of each format with their value type and description, as <c>-o help</c> lists them.</summary>
    public static IReadOnlyList<(string Name, string Type, string Description)> OptionsOf(string format)
    {
        ImageOpener.CheckFormatName(format);
        return format == ImageOpener.Raw
            ? [("size", "size", "Virtual disk size")]
            :
            [
                ("backing_file", "str", "File name of a base image"),
                ("backing_fmt", "str", "Image format of the base image"),
                ("cluster_size", "size", "qcow2 cluster size"),
                ("compat", "str", "Compatibility level (v2 [0.10] or v3 [1.1])"),
                ("compression_type", "str", "Compression method used for image cluster compression"),
                ("extended_l2", "bool (on/off)", "Extended L2 tables (only off is supported)"),
                ("lazy_refcounts", "bool (on/off)", "Postpone refcount updates"),
                ("preallocation", "str", "Preallocation mode (only off is supported)"),
                ("refcount_bits", "num", "Width of a reference count entry in bits"),
                ("size", "size", "Virtual disk size"),
            ];
    }

    /// <summary>Splits "a=1,b=2" into pairs; ",," is a literal comma, as in QEMU option strings.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ParseOptionList(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var result = new List<KeyValuePair<string, string>>();
        var parts = QemuOptionList.Split(list);
        foreach (string part in parts)
        {
            if (part.Length == 0)
            {
                throw BlockException.Invalid($"Invalid option list: {list}");
            }

            int eq = part.IndexOf('=', StringComparison.Ordinal);
            result.Add(eq < 0 ? new(part, "on") : new(part[..eq], part[(eq + 1)..]));
        }

        return result;
    }

    /// <summary>
    /// Parses a size the way qemu-img does: a number, optionally with a fraction, followed by an
    /// optional suffix b/B (bytes), k/K, M, G, T, P, E (powers of 1024).
    /// </summary>
    public static bool TryParseSize(string text, out long size)
    {
        size = 0;
        if (string.IsNullOrEmpty(text) || text[0] is '-' or '+')
        {
            return false;
        }

        int end = 0;
        while (end < text.Length && (char.IsAsciiDigit(text[end]) || text[end] == '.'))
        {
            end++;
        }

        if (end == 0 || !decimal.TryParse(text.AsSpan(0, end), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value))
        {
            return false;
        }

        string suffix = text[end..];
        int shift = suffix switch
        {
            "" or "b" or "B" => 0,
            "k" or "K" => 10,
            "m" or "M" => 20,
            "g" or "G" => 30,
            "t" or "T" => 40,
            "p" or "P" => 50,
            "e" or "E" => 60,
            _ => -1,
        };
        if (shift < 0 || (shift == 0 && value != decimal.Truncate(value)))
        {
            return false;
        }

        try
        {
            decimal bytes = decimal.Truncate(value * (1L << shift));
            if (bytes >= (decimal)long.MaxValue)
            {
                return false;
            }

            size = (long)bytes;
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    /// <summary>
    /// Validates the request and fills in what is implied: the backing file's format (probed once
    /// when not given) and the size (the backing file's virtual size when not given).
    /// </summary>
    public static async ValueTask<ImageCreatePlan> PlanAsync(string path, string format, long? size, string? backingFile,
        string? backingFormat, IEnumerable<KeyValuePair<string, string>> options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(options);
        ImageOpener.CheckFormatName(format);
        var known = OptionsOf(format).Select(o => o.Name).ToHashSet();
        var q = new Qcow2CreateOptions { Size = 0 };
        bool compatGiven = false;
        foreach (var (name, value) in options)
        {
            if (!known.Contains(name))
            {
                throw BlockException.Invalid($"Invalid parameter '{name}'");
            }

            switch (name)
            {
                case "size":
                    size = TryParseSize(value, out long s) ? s : throw BlockException.Invalid($"Parameter 'size' expects a non-negative number below 2^63");
                    break;
                case "backing_file":
                    backingFile = value;
                    break;
                case "backing_fmt":
                    backingFormat = value;
                    break;
                case "cluster_size":
                    if (!TryParseSize(value, out long cs) || cs < 512 || cs > 2 * 1024 * 1024 || (cs & (cs - 1)) != 0)
                    {
                        throw BlockException.Invalid("Cluster size must be a power of two between 512 and 2048k");
                    }

                    q = q with { ClusterSize = (int)cs };
                    break;
                case "compat":
                    q = q with
                    {
                        Compat = value switch
                        {
                            "0.10" or "v2" => "0.10",
                            "1.1" or "v3" => "1.1",
                            _ => throw BlockException.Invalid($"Parameter 'version' does not accept value '{value}'"),
                        },
                    };
                    compatGiven = true;
                    break;
                case "refcount_bits":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int bits) || bits < 1 || bits > 64 || (bits & (bits - 1)) != 0)
                    {
                        throw BlockException.Invalid("Refcount width must be a power of two and may not exceed 64 bits");
                    }

                    q = q with { RefcountBits = bits };
                    break;
                case "lazy_refcounts":
                    q = q with { LazyRefcounts = ParseBool(name, value) };
                    break;
                case "compression_type":
                    q = q with
                    {
                        CompressionType = value is "zlib" or "zstd" ? value
                            : throw BlockException.Invalid($"Parameter 'compression-type' does not accept value '{value}'"),
                    };
                    break;
                case "extended_l2":
                    if (ParseBool(name, value))
                    {
                        throw BlockException.NotSupported("Extended L2 tables are not supported");
                    }

                    break;
                case "preallocation":
                    if (value != "off")
                    {
                        throw BlockException.NotSupported($"Unsupported preallocation mode '{value}'");
                    }

                    break;
            }
        }

        if (format == ImageOpener.Raw)
        {
            if (backingFile is not null)
            {
                throw BlockException.NotSupported("Backing file not supported for file format 'raw'");
            }

            if (backingFormat is not null)
            {
                throw BlockException.NotSupported("Backing file format not supported for file format 'raw'");
            }
        }

        if (string.IsNullOrEmpty(backingFile))
        {
            backingFile = null;
            if (backingFormat is not null)
            {
                throw BlockException.Invalid("Backing format cannot be used without backing file");
            }
        }
        else
        {
            if (backingFormat is not null)
            {
                ImageOpener.CheckFormatName(backingFormat);
            }

            string backingPath = ImageOpener.ResolveBackingPath(path, backingFile);
            if (backingFormat is null || size is null)
            {
                try
                {
                    backingFormat ??= await ImageOpener.ProbeFormatAsync(backingPath, cancellationToken);
                    if (size is null)
                    {
                        // Only its size is read, whoever uses it: no permission, everything shared, as
                        // qemu-img create opens it (bdrv_img_create: force-share, no I/O).
                        await using var backing = await ImageOpener.OpenAsync(backingPath, new ImageOpenOptions
                        {
                            Format = backingFormat, ReadOnly = true, OpenBacking = false, Permissions = NodePermissions.None, ForceShare = true,
                        }, cancellationToken);
                        size = backing.Size;
                    }
                }
                catch (BlockException e)
                {
                    throw new BlockException(e.Error, $"Could not open backing image: {e.Message}", e);
                }
            }
        }

        if (size is not { } virtualSize)
        {
            throw BlockException.Invalid("Image creation needs a size parameter");
        }

        if (format == ImageOpener.Raw)
        {
            return new ImageCreatePlan
            {
                Path = path,
                Format = format,
                Size = virtualSize,
                Description = Invariant($"fmt=raw size={virtualSize}"),
            };
        }

        q = q with { Size = virtualSize, BackingFile = backingFile, BackingFormat = backingFormat };
        if (q.Compat == "0.10")
        {
            if (q.RefcountBits != 16)
            {
                throw BlockException.Invalid("Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
            }

            if (q.LazyRefcounts)
            {
                throw BlockException.Invalid("Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
            }

            if (q.CompressionType != "zlib")
            {
                throw BlockException.Invalid("Compression type can only be changed with compat=1.1 or above");
            }
        }

        // The order qemu-img 7.2 prints them in.
        var text = new StringBuilder(Invariant($"fmt=qcow2 cluster_size={q.ClusterSize} extended_l2=off compression_type={q.CompressionType} size={virtualSize}"));
        if (compatGiven)
        {
            text.Append(" compat=").Append(q.Compat);
        }

        if (backingFile is not null)
        {
            text.Append(" backing_file=").Append(backingFile).Append(" backing_fmt=").Append(backingFormat);
        }

        text.Append(" lazy_refcounts=").Append(q.LazyRefcounts ? "on" : "off").Append(Invariant($" refcount_bits={q.RefcountBits}"));
        return new ImageCreatePlan { Path = path, Format = format, Size = virtualSize, Qcow2 = q, Description = text.ToString() };
    }

    /// <summary>
    /// Writes the planned image. By default an existing regular file at its path is replaced, as
    /// qemu-img does; <see cref="FileCreation.New"/> refuses anything already there, and removes the
    /// file it made if writing it fails. A symbolic link at the path is never followed.
    /// </summary>
    public static async ValueTask CreateAsync(ImageCreatePlan plan, FileCreation creation = FileCreation.ReplaceRegularFile,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var file = RawFileNode.Create(plan.Path, plan.Format == ImageOpener.Raw ? plan.Size : 0, creation);
        try
        {
            await using (file)
            {
                if (plan.Format == ImageOpener.Raw)
                {
                    int first = (int)Math.Min(plan.Size, RawFirstBlock);
                    if (first > 0)
                    {
                        await file.WriteAsync(0, new byte[first], WriteFlags.None, cancellationToken);
                    }
                }
                else
                {
                    await Qcow2Node.CreateAsync(file, plan.Qcow2!, cancellationToken);
                }
            }
        }
        catch when (creation == FileCreation.New)
        {
            File.Delete(plan.Path);
            throw;
        }
    }

    /// <summary>Plans and creates in one step (the daemon's live snapshot uses this).</summary>
    public static async ValueTask<ImageCreatePlan> CreateAsync(string path, string format, long? size, string? backingFile,
        string? backingFormat, IEnumerable<KeyValuePair<string, string>>? options = null, CancellationToken cancellationToken = default)
    {
        var plan = await PlanAsync(path, format, size, backingFile, backingFormat, options ?? [], cancellationToken);
        await CreateAsync(plan, FileCreation.ReplaceRegularFile, cancellationToken);
        return plan;
    }

    private static bool ParseBool(string name, string value) => value switch
    {
        "on" or "true" or "yes" => true,
        "off" or "false" or "no" => false,
        _ => throw BlockException.Invalid($"Parameter '{name}' expects 'on' or 'off'"),
    };

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
