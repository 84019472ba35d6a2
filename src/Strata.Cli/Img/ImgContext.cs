using System.Globalization;
using Strata.Backup.Stores;
using Strata.Block;
using Strata.Block.Drivers;
using Strata.Formats;
using Strata.Formats.Raw;

namespace Strata.Cli.Img;

/// <summary>Where a command writes, and the helpers every command shares.</summary>
public sealed class ImgContext(TextWriter output, TextWriter error)
{
    public TextWriter Out { get; } = output;

    public TextWriter Err { get; } = error;

    /// <summary>
    /// The formats and protocols the command line opens and creates: the standard ones, and
    /// <c>s3://BUCKET/KEY</c> to read an object of an S3 store (a backup set's point, with its
    /// backing chain) where it is, read-only.
    /// </summary>
    public static DriverRegistry Drivers { get; } = StandardDrivers.Registry.With(S3ProtocolDriver.FromEnvironment());

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

    /// <summary>
    /// What a qemu-img command that reads an image asks of it: consistent reads, everything shared
    /// (blk_new_open). A qcow2 image still forbids other writers of its file (docs/locking.md).
    /// </summary>
    public static NodePermissions Reading { get; } = new(BlockPermissions.ConsistentRead, BlockPermissions.All);

    /// <summary>What a qemu-img command that writes an image asks of it.</summary>
    public static NodePermissions Writing { get; } = new(BlockPermissions.ConsistentRead | BlockPermissions.Write, BlockPermissions.All);

    /// <summary>
    /// Opens an image (and by default its backing chain, read-only), holding <paramref name="permissions"/>
    /// (default: <see cref="Reading"/> or <see cref="Writing"/>) as qemu-img would; with
    /// <paramref name="forceShare"/> (-U) every image opened read-only shares everything; with
    /// <paramref name="repair"/> (check -r) a qcow2 image marked corrupt opens read-write.
    /// </summary>
    public static async ValueTask<IBlockNode> OpenAsync(string path, string? format, bool readOnly, bool openBacking = true, bool direct = false,
        NodePermissions? permissions = null, bool forceShare = false, bool repair = false)
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
            Permissions = permissions ?? (readOnly ? Reading : Writing),
            ForceShare = forceShare,
            Repair = repair,
            Drivers = Drivers,

            // The image tools show a dirty_bitmap file (info, map); copying one is refused where it is read.
            AllowNonDisk = true,
        });
    }

    /// <summary>qemu-img's -U (--force-share), for the commands that have it.</summary>
    public static bool ForceShare(ParsedArgs parsed)
    {
        ArgumentNullException.ThrowIfNull(parsed);
        return parsed.Has("U") || parsed.Has("force-share");
    }

    /// <summary>
    /// Holds an existing file while it is created again over, as qemu-img create does (file-posix.c,
    /// raw_co_create: write and resize taken, resize not shared), so that an image in use is refused
    /// rather than destroyed. Null when there is no file yet. Dispose it before opening the new image.
    /// </summary>
    public static async ValueTask<IAsyncDisposable?> HoldForCreateAsync(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var file = RawFileNode.Open(path, readOnly: true);
        try
        {
            file.SetPermissions(new NodePermissions(BlockPermissions.Write | BlockPermissions.Resize, BlockPermissions.All & ~BlockPermissions.Resize),
                PermissionCheck.Conflicts);
            return file;
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }
    }

    public static void CheckFormat(string format) => FormatDriver(format);

    /// <summary>The driver of a format named on the command line, or qemu-img's one-line error.</summary>
    public static IFormatDriver FormatDriver(string format) =>
        Drivers.HasFormat(format) ? Drivers.Format(format) : throw new CliException($"Unknown file format '{format}'");

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
