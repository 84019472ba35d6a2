using static Strata.Block.BlockPermissions;

namespace Strata.Block;

/// <summary>
/// What a user holds on an image (<see cref="Held"/>) and what it lets other users do meanwhile
/// (<see cref="Shared"/>): QEMU's (perm, shared_perm) pair, with QEMU's rules for what an image asks
/// of the file it is stored in and of its backing file (block.c, bdrv_default_perms), so that the
/// lock bytes Strata takes are the ones QEMU takes for the same use (docs/locking.md).
/// </summary>
/// <param name="Held">What the user does.</param>
/// <param name="Shared">What others may do at the same time; everything else is forbidden to them.</param>
/// <param name="ForceShare">
/// qemu-img's <c>-U</c> (QEMU's force-share): everything is shared, at every node below too, whatever
/// a format would forbid. For readers only.
/// </param>
/// <remarks>The default value shares nothing; use the roles or the constructor.</remarks>
public readonly record struct NodePermissions(BlockPermissions Held, BlockPermissions Shared, bool ForceShare = false)
{
    /// <summary>
    /// A guest's writable disk (<c>strata serve</c>, a merge's base): reads and writes, and lets others
    /// only read, as a VM's disk does without share-rw. No second writer, Strata's or QEMU's.
    /// </summary>
    public static NodePermissions Writer { get; } = new(ConsistentRead | Write, ConsistentRead | WriteUnchanged);

    /// <summary>A guest's read-only disk: reads, and forbids writers so that what it reads stays one disk.</summary>
    public static NodePermissions Reader { get; } = new(ConsistentRead, ConsistentRead | WriteUnchanged);

    /// <summary>Holds nothing and forbids nothing.</summary>
    public static NodePermissions None { get; } = new(BlockPermissions.None, All);

    /// <summary>The same use with <see cref="ForceShare"/>: everything shared.</summary>
    public NodePermissions WithForceShare() => this with { Shared = All, ForceShare = true };

    /// <summary>
    /// What an image with metadata (qcow2) asks of the file it is stored in, for this use of the image
    /// (bdrv_default_perms_for_storage, a child with the DATA and METADATA roles): a writable image
    /// writes its metadata even when its user does not write, writing may grow the file, and nobody
    /// else may write or resize the file under the metadata.
    /// </summary>
    public NodePermissions ForMetadataFile(bool writable)
    {
        var held = Held | (writable ? Write | Resize : BlockPermissions.None);
        if ((held & WriteUnchanged) != 0)
        {
            // An unchanging write of the image may still allocate (copy-on-read) on the file.
            held |= Write;
        }

        if ((held & Write) != 0)
        {
            held |= Resize;
        }

        return this with { Held = held, Shared = ForceShare ? All : Shared & ~(Write | Resize) };
    }

    /// <summary>
    /// What an image asks of its backing file for this use of the image (bdrv_default_perms_for_cow):
    /// consistent reads if its user reads, nothing else; others may read and make unchanging writes,
    /// and may write and resize only if this image's own user lets others write.
    /// </summary>
    public NodePermissions ForBacking()
    {
        var shared = ((Shared & Write) != 0 ? Write | Resize : BlockPermissions.None) | ConsistentRead | WriteUnchanged;
        return this with { Held = Held & ConsistentRead, Shared = ForceShare ? All : shared };
    }
}
