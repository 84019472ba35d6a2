using Strata.Block;
using Strata.Block.Live;
using Strata.Daemon.Live;
using Strata.Formats;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Daemon;

/// <summary>Live snapshot and live merge of a drive (DESIGN.md: every graph change happens under a drain).</summary>
public sealed partial class Drive
{
    /// <summary>
    /// Creates or opens the overlay for a live snapshot of this drive and checks it fits: qcow2, the
    /// drive's size, and (for an existing overlay) a backing file that is the drive's current image.
    /// Nothing about the drive changes; on failure no file is left behind.
    /// </summary>
    public async Task<PreparedSnapshot> PrepareSnapshotAsync(string overlayPath, SnapshotMode mode, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(overlayPath);
        if (ReadOnly)
        {
            throw BlockException.ReadOnly($"drive '{Id}' is read-only: a snapshot would have nothing to protect");
        }

        var current = Root;
        string? currentFile = current.FileName is { } f ? Path.GetFullPath(f) : null;
        string full = Path.GetFullPath(overlayPath);
        if (currentFile is null)
        {
            throw BlockException.NotSupported($"drive '{Id}' has no image file to put an overlay on");
        }

        if (ChainFiles().Contains(full))
        {
            throw BlockException.Invalid($"'{overlayPath}' is already in use by drive '{Id}'");
        }

        bool created = false;
        if (mode == SnapshotMode.AbsolutePaths)
        {
            if (File.Exists(full))
            {
                throw BlockException.Invalid($"'{overlayPath}' already exists (use mode 'existing' to take it as the overlay)");
            }

            // Made under a temporary name and renamed once complete, so that a crash half-way leaves
            // no half-written image under the name the user asked for. Whoever can write in the
            // folder may have planted something at either name: the temporary is made only if
            // nothing has its name (O_EXCL, O_NOFOLLOW; ImageCreator removes it if writing fails) and
            // the rename replaces nothing, so no link is followed and no file replaced.
            string partial = full + ".partial";
            var plan = await ImageCreator.PlanAsync(partial, ImageOpener.Qcow2Format, current.Size, currentFile, current.DriverName, [], cancellationToken);
            await ImageCreator.CreateAsync(plan, FileCreation.New, cancellationToken);
            try
            {
                NewFile.Move(partial, full);
            }
            catch
            {
                File.Delete(partial);
                throw;
            }

            created = true;
        }

        Qcow2Node? overlay = null;
        try
        {
            var node = await ImageOpener.OpenAsync(full, new ImageOpenOptions { OpenBacking = false, Direct = Spec.Direct }, cancellationToken);
            overlay = node as Qcow2Node;
            if (overlay is null)
            {
                await node.DisposeAsync();
                throw BlockException.Invalid($"'{overlayPath}' is not a qcow2 image (a snapshot overlay must be qcow2)");
            }

            CheckOverlayFits(overlay, overlayPath, full, currentFile, current);
            return new PreparedSnapshot(this, overlay, full, created);
        }
        catch
        {
            if (overlay is not null)
            {
                await overlay.DisposeAsync();
            }

            if (created && File.Exists(full))
            {
                File.Delete(full);
            }

            throw;
        }
    }

    /// <summary>The drive's top image, looking through the mirror filter a live merge puts above it.</summary>
    public IBlockNode Top => Root is MirrorNode mirror ? mirror.Overlay : Root;

    /// <summary>The full paths of every image in the drive's chain, top first.</summary>
    public IReadOnlyList<string> ChainFiles() =>
        Top.Layers().Where(n => n.FileName is not null).Select(n => Path.GetFullPath(n.FileName!)).ToList();

    /// <summary>The image of the chain whose file is <paramref name="path"/> (null: none).</summary>
    public IBlockNode? FindNode(string path) => Top.FindByFile(Path.GetFullPath(path));

    /// <summary>The image directly above <paramref name="node"/> in the chain (null: it is the top).</summary>
    public IBlockNode? ParentOf(IBlockNode node) => Top.ParentOf(node);

    private void CheckOverlayFits(Qcow2Node overlay, string overlayPath, string full, string currentFile, IBlockNode current)
    {
        var info = overlay.Info;
        if (info.BackingFile is not { } backing)
        {
            throw BlockException.Invalid($"'{overlayPath}' has no backing file; it must be created with -b {currentFile}");
        }

        string resolved = ImageOpener.ResolveBackingPath(full, backing);
        if (resolved != currentFile)
        {
            throw BlockException.Invalid($"'{overlayPath}' has backing file '{backing}', but drive '{Id}' is on '{currentFile}'");
        }

        if (info.BackingFormat is { } format && format != current.DriverName)
        {
            throw BlockException.Invalid($"'{overlayPath}' records backing format '{format}', but '{currentFile}' is {current.DriverName}");
        }

        if (overlay.Size != current.Size)
        {
            // The guest's disk must not change size under it at the switch.
            throw BlockException.Invalid($"'{overlayPath}' is {overlay.Size} bytes, but drive '{Id}' is {current.Size} bytes");
        }
    }
}
