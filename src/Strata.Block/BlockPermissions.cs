namespace Strata.Block;

/// <summary>
/// What a user of an image does with it: QEMU's block permissions, with QEMU's values
/// (include/block/block-common.h, BLK_PERM_*), because the bit number is also the offset of the
/// image's lock byte (docs/locking.md) and Strata and QEMU must read each other's bytes.
/// </summary>
/// <remarks>
/// QEMU 6.1 and older also had GRAPH_MOD (0x10, byte 104/204); QEMU 6.2 dropped it and so does this
/// set, as QEMU 7.2 does: a byte nobody tests would only look like a lock.
/// </remarks>
[Flags]
public enum BlockPermissions
{
    None = 0,

    /// <summary>The user reads and needs what it reads to be one consistent disk.</summary>
    ConsistentRead = 0x01,

    /// <summary>The user changes what the disk reads.</summary>
    Write = 0x02,

    /// <summary>The user writes only what is there already (copy-on-read, a mirror's catching up).</summary>
    WriteUnchanged = 0x04,

    /// <summary>The user changes the size.</summary>
    Resize = 0x08,

    All = ConsistentRead | Write | WriteUnchanged | Resize,
}
