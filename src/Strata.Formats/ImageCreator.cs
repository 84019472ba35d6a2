using System.Globalization;
using Strata.Block;
using Strata.Block.Drivers;
using Strata.Formats.Raw;

namespace Strata.Formats;

/// <summary>
/// Creates images of any registered format from a format name, a size and qemu-img style <c>-o</c>
/// options (<c>cluster_size=4k,compat=1.1,…</c>), as <c>qemu-img create</c> does: the size and the
/// backing file are settled here, the format's own options by its driver
/// (<see cref="IFormatDriver.PlanCreate"/>), the bytes written through the locator's protocol driver.
/// </summary>
/// <remarks>
/// A backing file given without a format is probed once and the probed format is recorded, so the
/// overlay never needs probing again (probing a raw image that looks like qcow2 is a known attack).
/// Without a size the backing file's virtual size is used.
/// </remarks>
public static class ImageCreator
{
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
    public static ValueTask<ImageCreatePlan> PlanAsync(string path, string format, long? size, string? backingFile,
        string? backingFormat, IEnumerable<KeyValuePair<string, string>> options, CancellationToken cancellationToken = default)
        => PlanAsync(StandardDrivers.Registry, path, format, size, backingFile, backingFormat, options, cancellationToken);

    /// <inheritdoc cref="PlanAsync(string, string, long?, string?, string?, IEnumerable{KeyValuePair{string, string}}, CancellationToken)"/>
    public static async ValueTask<ImageCreatePlan> PlanAsync(DriverRegistry drivers, string path, string format, long? size, string? backingFile,
        string? backingFormat, IEnumerable<KeyValuePair<string, string>> options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(drivers);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(options);
        var driver = drivers.Format(format);
        var known = driver.CreateOptions.Select(o => o.Name).ToHashSet();
        var own = new List<KeyValuePair<string, string>>();
        var given = new HashSet<string>();
        foreach (var (name, value) in options)
        {
            if (!known.Contains(name))
            {
                throw BlockException.Invalid($"Invalid parameter '{name}'");
            }

            given.Add(name);
            switch (name)
            {
                case CreateOption.Size:
                    size = TryParseSize(value, out long s) ? s : throw BlockException.Invalid($"Parameter 'size' expects a non-negative number below 2^63");
                    break;
                case CreateOption.BackingFile:
                    backingFile = value;
                    break;
                case CreateOption.BackingFormat:
                    backingFormat = value;
                    break;
                default:
                    own.Add(new(name, value));
                    break;
            }
        }

        if (!known.Contains(CreateOption.BackingFile))
        {
            if (backingFile is not null)
            {
                throw BlockException.NotSupported($"Backing file not supported for file format '{format}'");
            }

            if (backingFormat is not null)
            {
                throw BlockException.NotSupported($"Backing file format not supported for file format '{format}'");
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
            (backingFormat, size) = await InspectBackingAsync(drivers, path, backingFile, backingFormat, size, cancellationToken);
        }

        if (size is not { } virtualSize)
        {
            throw BlockException.Invalid("Image creation needs a size parameter");
        }

        var creation = driver.PlanCreate(new FormatCreateRequest
        {
            Size = virtualSize, BackingFile = backingFile, BackingFormat = backingFormat, Options = own,
        });
        return new ImageCreatePlan
        {
            Path = path, Format = format, Size = virtualSize, Creation = creation, GivenOptions = given, Drivers = drivers,
        };
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
        var locator = plan.Drivers.Locate(plan.Path);
        var protocol = plan.Drivers.Protocol(locator);
        var file = await protocol.CreateAsync(locator, plan.Creation.InitialFileSize, creation == FileCreation.New, cancellationToken);
        try
        {
            await using (file)
            {
                await plan.Creation.WriteAsync(file, cancellationToken);
            }
        }
        catch when (creation == FileCreation.New)
        {
            await protocol.DeleteAsync(locator, CancellationToken.None);
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

    /// <summary>
    /// The backing file's format (given, else probed once and then recorded) and the new image's size
    /// (given, else the backing file's).
    /// </summary>
    // A dirty_bitmap file holds no disk's bytes: an overlay on it would fail at its first read.
    private static string RefuseNonDisk(DriverRegistry drivers, string format, string backingFile) =>
        drivers.Format(format).IsDisk ? format : throw BlockException.Invalid($"'{backingFile}' is a {format} file, not a disk image: it cannot be a backing file");

    private static async ValueTask<(string Format, long? Size)> InspectBackingAsync(DriverRegistry drivers, string path, string backingFile,
        string? backingFormat, long? size, CancellationToken cancellationToken)
    {
        if (backingFormat is not null)
        {
            drivers.Format(backingFormat);
        }

        var backing = drivers.ResolveBacking(path, backingFile);
        if (backingFormat is not null && size is not null)
        {
            return (RefuseNonDisk(drivers, backingFormat, backingFile), size);
        }

        try
        {
            if (backingFormat is null)
            {
                await using var file = await drivers.Protocol(backing).OpenAsync(backing, new ProtocolOpenOptions { ReadOnly = true }, cancellationToken);
                backingFormat = (await drivers.ProbeAsync(file, cancellationToken)).Name;
            }

            RefuseNonDisk(drivers, backingFormat, backingFile);
            if (size is null)
            {
                // Only its size is read, whoever uses it: no permission, everything shared, as
                // qemu-img create opens it (bdrv_img_create: force-share, no I/O).
                await using var image = await ImageOpener.OpenAsync(backing, new ImageOpenOptions
                {
                    Drivers = drivers, Format = backingFormat, ReadOnly = true, OpenBacking = false, Permissions = NodePermissions.None, ForceShare = true,
                }, cancellationToken);
                size = image.Size;
            }

            return (backingFormat, size);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Error, $"Could not open backing image: {e.Message}", e);
        }
    }
}
