using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Formats;

/// <summary>Opens an image file and its backing chain, the way qemu-img does.</summary>
public static class ImageOpener
{
    public const string Raw = "raw";
    public const string Qcow2Format = "qcow2";

    public static async ValueTask<IBlockNode> OpenAsync(string path, ImageOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        return await OpenAsync(path, options, [], cancellationToken);
    }

    /// <summary>
    /// Guesses a file's format from its first sector: "qcow2" or "raw". A file that looks like a
    /// format Strata does not read is refused rather than taken for raw (<see cref="ImageSignatures"/>).
    /// </summary>
    public static async ValueTask<string> ProbeFormatAsync(string path, CancellationToken cancellationToken = default)
    {
        await using var file = RawFileNode.Open(path, readOnly: true);
        return await ProbeFormatAsync(file, cancellationToken);
    }

    /// <inheritdoc cref="ProbeFormatAsync(string, CancellationToken)"/>
    public static async ValueTask<string> ProbeFormatAsync(IBlockNode file, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        var start = new byte[(int)Math.Min(file.Size, ImageSignatures.ProbeLength)];
        await file.ReadAsync(0, start, cancellationToken);
        return ImageSignatures.Detect(start) switch
        {
            null => Raw,
            Qcow2Format => Qcow2Format,
            var other => throw BlockException.NotSupported(
                $"'{file.FileName}' looks like a {other} image, which Strata does not read; give its format explicitly (format=raw serves its bytes as they are)"),
        };
    }

    /// <summary>
    /// Where a backing file name recorded in <paramref name="overlayPath"/> points: absolute names as
    /// they are, relative names against the overlay's folder (as QEMU does).
    /// </summary>
    public static string ResolveBackingPath(string overlayPath, string backingName)
    {
        ArgumentNullException.ThrowIfNull(overlayPath);
        ArgumentNullException.ThrowIfNull(backingName);
        if (Path.IsPathRooted(backingName))
        {
            return backingName;
        }

        string folder = Path.GetDirectoryName(Path.GetFullPath(overlayPath)) ?? ".";
        return Path.GetFullPath(Path.Combine(folder, backingName));
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

    public static void CheckFormatName(string format)
    {
        if (format is not (Raw or Qcow2Format))
        {
            throw BlockException.Invalid($"Unknown driver '{format}' (supported: raw, qcow2)");
        }
    }

    private static void TakeLocks(RawFileNode file, NodePermissions permissions, string path, ImageOpenOptions options)
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

    private static async ValueTask<IBlockNode> OpenAsync(string path, ImageOpenOptions options, HashSet<string> seen, CancellationToken cancellationToken)
    {
        string full = Path.GetFullPath(path);
        if (!seen.Add(full))
        {
            throw BlockException.Invalid($"Backing chain of '{path}' loops back to '{full}'");
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
        // probe's read and qcow2's metadata I/O itself.
        var file = RawFileNode.Open(path, options.ReadOnly, options.Direct);
        try
        {
            string format = options.Format ?? await ProbeFormatAsync(file, cancellationToken);
            CheckFormatName(format);
            if (format == Raw)
            {
                // A raw image is its file: the user's permissions are the file's (QEMU's raw format
                // passes them through to its file child).
                TakeLocks(file, permissions, path, options);

                // A guessed raw stays raw: its first sector may not be made to look like a format.
                return options.Format is null ? new ProbedRawNode(file) : file;
            }

            // Locked before the image is opened: a read-write open writes the header.
            TakeLocks(file, permissions.ForMetadataFile(!options.ReadOnly), path, options);
            var image = options.Repair && !options.ReadOnly
                ? await Qcow2Node.OpenForRepairAsync(file, cancellationToken)
                : await Qcow2Node.OpenAsync(file, options.ReadOnly, cancellationToken);
            file = null;
            try
            {
                var info = image.Info;
                if (options.OpenBacking && info.BackingFile is { } backingName)
                {
                    string backingPath = ResolveBackingPath(path, backingName);
                    // The recorded format is trusted; only an image that records none is probed.
                    var backingOptions = options with
                    {
                        Format = info.BackingFormat,
                        ReadOnly = true,
                        Permissions = permissions.ForBacking(),
                        TakeOverLocks = false,
                    };
                    try
                    {
                        image.BackingEdge.Attach(await OpenAsync(backingPath, backingOptions, seen, cancellationToken), owns: true);
                    }
                    catch (BlockException e)
                    {
                        throw new BlockException(e.Error, $"Could not open backing file of '{path}': {e.Message}", e);
                    }
                }

                return image;
            }
            catch
            {
                await image.DisposeAsync();
                throw;
            }
        }
        catch
        {
            if (file is not null)
            {
                await file.DisposeAsync();
            }

            throw;
        }
    }
}
