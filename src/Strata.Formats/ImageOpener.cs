using Strata.Block;
using Strata.Block.Drivers;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Formats;

/// <summary>
/// Opens an image and its backing chain, the way qemu-img does: the locator's protocol driver opens
/// the bytes, the given or probed format driver reads them (<see cref="ImageOpenOptions.Drivers"/>).
/// </summary>
/// <remarks>
/// The string-path methods are the old entry points, kept as thin wrappers over the registry; new
/// code passes an <see cref="ImageLocator"/>.
/// </remarks>
public static class ImageOpener
{
    /// <summary>The old spelling of <see cref="RawFormatDriver.FormatName"/>.</summary>
    public const string Raw = RawFormatDriver.FormatName;

    /// <summary>The old spelling of <see cref="Qcow2FormatDriver.FormatName"/>.</summary>
    public const string Qcow2Format = Qcow2FormatDriver.FormatName;

    public static ValueTask<IBlockNode> OpenAsync(string path, ImageOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        return OpenAsync(options.Drivers.Locate(path), options, cancellationToken);
    }

    public static async ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ImageOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        ArgumentNullException.ThrowIfNull(options);
        return await OpenAsync(locator, options, [], cancellationToken);
    }

    /// <summary>
    /// Guesses an image's format from its first sector: "qcow2" or "raw". A file that looks like a
    /// format Strata does not read is refused rather than taken for raw (<see cref="ImageSignatures"/>).
    /// </summary>
    public static async ValueTask<string> ProbeFormatAsync(string path, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        var drivers = StandardDrivers.Registry;
        var locator = drivers.Locate(path);
        await using var file = await drivers.Protocol(locator).OpenAsync(locator, new ProtocolOpenOptions { ReadOnly = true }, cancellationToken);
        return (await drivers.ProbeAsync(file, cancellationToken)).Name;
    }

    /// <inheritdoc cref="ProbeFormatAsync(string, CancellationToken)"/>
    public static async ValueTask<string> ProbeFormatAsync(IBlockNode file, CancellationToken cancellationToken = default)
        => (await StandardDrivers.Registry.ProbeAsync(file, cancellationToken)).Name;

    /// <summary>
    /// An image's full name (<see cref="ImageLocator.FullName"/>): a local path made full, an image in
    /// a store (<c>rbd:…</c>) as written. What the engine compares and records, never a path made of a locator.
    /// </summary>
    public static string FullName(string name) => StandardDrivers.Registry.Locate(name).FullName;

    /// <summary>
    /// Where a backing file name recorded in <paramref name="overlayPath"/> points: absolute names as
    /// they are, relative names against the overlay's folder (as QEMU does).
    /// </summary>
    public static string ResolveBackingPath(string overlayPath, string backingName)
    {
        ArgumentNullException.ThrowIfNull(overlayPath);
        ArgumentNullException.ThrowIfNull(backingName);
        return StandardDrivers.Registry.ResolveBacking(overlayPath, backingName).Text;
    }

    /// <summary>
    /// Opens <paramref name="node"/>'s image again, read-write, holding <paramref name="permissions"/>,
    /// with no moment at which neither open holds the image (docs/locking.md). The permissions are
    /// taken and checked on <paramref name="node"/>'s own open first, where its own locks cannot look
    /// like a stranger's, then copied to the new open unchecked, as QEMU moves its locks to a reopened
    /// file (file-posix.c, raw_check_perm). The backing chain is not opened: the caller moves
    /// <paramref name="node"/>'s over, swaps the new node in and closes <paramref name="node"/>. On
    /// failure <paramref name="node"/> is given back <paramref name="current"/>, its permissions before.
    /// The new open is made the way the first was: the same format, and a probed raw image stays
    /// guarded (<see cref="ProbedRawNode"/>), so a merge into it cannot give it a header either.
    /// </summary>
    public static ValueTask<IBlockNode> ReopenWritableAsync(IBlockNode node, NodePermissions current, NodePermissions permissions,
        ImageOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ReopenAsync(node, current, permissions, options with { ReadOnly = false }, cancellationToken);
    }

    /// <summary>
    /// Opens <paramref name="node"/>'s image again as <see cref="ReopenWritableAsync"/> does, read-only
    /// when <paramref name="options"/> say so (the caller has flushed <paramref name="node"/> first).
    /// </summary>
    public static async ValueTask<IBlockNode> ReopenAsync(IBlockNode node, NodePermissions current, NodePermissions permissions,
        ImageOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(options);
        string file = node.FileName ?? throw BlockException.NotSupported($"a {node.DriverName} node has no file to reopen");
        node.SetPermissions(permissions, PermissionCheck.Conflicts);
        try
        {
            return await OpenAsync(file, options with
            {
                Format = node is ProbedRawNode ? null : node.DriverName,
                OpenBacking = false,
                Permissions = permissions,
                ForceShare = false,
                TakeOverLocks = true,
            }, cancellationToken);
        }
        catch
        {
            node.SetPermissions(current, PermissionCheck.Skip);
            throw;
        }
    }

    /// <summary>Throws the registry's one-line error when <paramref name="format"/> is no standard format.</summary>
    public static void CheckFormatName(string format) => StandardDrivers.Registry.Format(format);

    private static void TakeLocks(IBlockNode file, NodePermissions permissions, string path, ImageOpenOptions options)
    {
        try
        {
            file.SetPermissions(permissions, options.TakeOverLocks ? PermissionCheck.Skip : PermissionCheck.Conflicts);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Error, $"Could not open '{path}': {e.Message}", e);
        }
    }

    private static async ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ImageOpenOptions options, HashSet<ImageLocator> seen,
        CancellationToken cancellationToken)
    {
        string path = locator.Text;
        if (!seen.Add(locator))
        {
            throw BlockException.Invalid($"Backing chain of '{path}' loops back to '{locator.Target}'");
        }

        if (seen.Count > options.MaxChainDepth)
        {
            throw BlockException.Invalid($"Backing chain of '{path}' is deeper than {options.MaxChainDepth} images");
        }

        var permissions = options.Permissions ?? (options.ReadOnly ? NodePermissions.Reader : NodePermissions.Writer);
        if (options.ForceShare && options.ReadOnly)
        {
            permissions = permissions.WithForceShare();
        }

        // With cache=none every file of the chain is opened with O_DIRECT; the file node aligns the
        // probe's read and the format's metadata I/O itself.
        var drivers = options.Drivers;
        var file = await drivers.Protocol(locator).OpenAsync(locator, new ProtocolOpenOptions { ReadOnly = options.ReadOnly, Direct = options.Direct },
            cancellationToken);
        IFormatDriver format;
        try
        {
            format = options.Format is { } name ? drivers.Format(name) : await drivers.ProbeAsync(file, cancellationToken);
            if (!format.IsDisk && !options.AllowNonDisk)
            {
                // A dirty_bitmap file holds no data a guest could read, and must never become one's disk.
                throw BlockException.Invalid($"'{path}' is a {format.Name} file, not a disk image");
            }

            // Locked before the image is opened: a read-write open may write its header.
            TakeLocks(file, format.FilePermissions(permissions, options.ReadOnly), path, options);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }

        return await format.OpenAsync(file, new FormatOpenRequest
        {
            Locator = locator,
            ReadOnly = options.ReadOnly,
            Repair = options.Repair,
            Probed = options.Format is null,
            OpenBacking = options.OpenBacking ? OpenBackingAsync : null,
        }, cancellationToken);

        async ValueTask<IBlockNode> OpenBackingAsync(string backingName, string? backingFormat, CancellationToken token)
        {
            var backingOptions = options with
            {
                Format = backingFormat,
                ReadOnly = true,
                Permissions = permissions.ForBacking(),
                TakeOverLocks = false,
                AllowNonDisk = false,
            };
            try
            {
                return await OpenAsync(drivers.ResolveBacking(locator, backingName), backingOptions, seen, token);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Error, $"Could not open backing file of '{path}': {e.Message}", e);
            }
        }
    }
}
