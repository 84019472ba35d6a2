using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats;

public sealed record ImageOpenOptions
{
    /// <summary>A format of <see cref="Drivers"/> ("raw", "qcow2"); null probes the image.</summary>
    public string? Format { get; init; }

    /// <summary>The drivers that open the image and its backing chain, by name.</summary>
    public DriverRegistry Drivers { get; init; } = StandardDrivers.Registry;

    public bool ReadOnly { get; init; }

    /// <summary>
    /// Open read-write for <c>check -r</c>: a qcow2 image marked corrupt is accepted (a repair that
    /// leaves no corruption clears the mark).
    /// </summary>
    public bool Repair { get; init; }

    /// <summary>Open the backing chain (read-only) below a qcow2 image.</summary>
    public bool OpenBacking { get; init; } = true;

    /// <summary>
    /// Accept a format that holds no disk (<see cref="IFormatDriver.IsDisk"/> false: a dirty_bitmap
    /// file), for the tools that show or read one. A drive, a backing file or a copy's source or
    /// target never sets it; a backing file is never opened with it.
    /// </summary>
    public bool AllowNonDisk { get; init; }

    /// <summary>cache=none: bypass the page cache with O_DIRECT.</summary>
    public bool Direct { get; init; }

    /// <summary>Longest backing chain accepted; deeper chains (or loops) are refused.</summary>
    public int MaxChainDepth { get; init; } = 64;

    /// <summary>
    /// What the image's user does with it and lets others do (docs/locking.md). The image's format
    /// adds what its metadata needs of its file, and each backing file gets
    /// <see cref="NodePermissions.ForBacking"/>. Null: <see cref="NodePermissions.Reader"/> when
    /// <see cref="ReadOnly"/>, else <see cref="NodePermissions.Writer"/>.
    /// </summary>
    public NodePermissions? Permissions { get; init; }

    /// <summary>
    /// qemu-img's -U: every image opened read-only (the image itself when <see cref="ReadOnly"/>, and
    /// its backing chain) shares everything and so opens whatever others hold.
    /// </summary>
    public bool ForceShare { get; init; }

    /// <summary>
    /// Take the image's locks without looking for conflicts: only for
    /// <see cref="ImageOpener.ReopenWritableAsync"/>, which took and checked them on the open it replaces.
    /// </summary>
    internal bool TakeOverLocks { get; init; }
}
