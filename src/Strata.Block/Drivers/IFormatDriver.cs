namespace Strata.Block.Drivers;

/// <summary>
/// A format driver: reads an image format (raw, qcow2) from the node a protocol driver opened, and
/// writes new images of it. Registered by name in a <see cref="DriverRegistry"/>.
/// </summary>
/// <remarks>
/// Contract for callers (the opener keeps it, so drivers never re-check): <see cref="OpenAsync"/> is
/// given a file node already holding <see cref="FilePermissions"/>, and owns it from the call: on
/// failure the driver closes it, on success the returned node does. Option values given to
/// <see cref="PlanCreate"/> carry only names from <see cref="CreateOptions"/>, and never the three
/// the creator handles itself (<see cref="CreateOption.Size"/>, <see cref="CreateOption.BackingFile"/>,
/// <see cref="CreateOption.BackingFormat"/>).
/// </remarks>
public interface IFormatDriver
{
    /// <summary>The format's name as qemu-img spells it ("raw", "qcow2").</summary>
    string Name { get; }

    /// <summary>
    /// The <c>-o</c> options a new image takes, in the order they are listed. A driver that lists
    /// <see cref="CreateOption.BackingFile"/> can record a backing file.
    /// </summary>
    IReadOnlyList<CreateOption> CreateOptions { get; }

    /// <summary>
    /// How sure the first <see cref="DriverRegistry.ProbeLength"/> bytes of an image (fewer for a
    /// short one) are of this format: 0 not at all, 1 any content will do (raw), more for a matching
    /// signature (QEMU's bdrv_probe scores).
    /// </summary>
    int Probe(ReadOnlySpan<byte> start);

    /// <summary>What the format needs of its file when its user holds <paramref name="user"/> (docs/locking.md).</summary>
    NodePermissions FilePermissions(NodePermissions user, bool readOnly);

    /// <summary>Opens the image in <paramref name="file"/> and, when asked, the backing chain it records.</summary>
    ValueTask<IBlockNode> OpenAsync(IBlockNode file, FormatOpenRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// False for a format that stores something other than a disk's bytes (a dirty_bitmap file): the
    /// image tools show and create it, but it never backs an image, serves as a drive or takes a copy.
    /// </summary>
    bool IsDisk => true;

    /// <summary>Checks the request and says what <see cref="FormatCreatePlan.WriteAsync"/> will write.</summary>
    FormatCreatePlan PlanCreate(FormatCreateRequest request);
}
