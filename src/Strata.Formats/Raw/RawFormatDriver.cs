using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats.Raw;

/// <summary>
/// The raw format: the file is the disk. Opening gives the protocol node itself, or a
/// <see cref="ProbedRawNode"/> when the format was guessed, so the guest cannot make the image look
/// like another format.
/// </summary>
public sealed class RawFormatDriver : IFormatDriver
{
    public const string FormatName = "raw";

    public string Name => FormatName;

    public IReadOnlyList<CreateOption> CreateOptions { get; } = [new(CreateOption.Size, CreateOptionType.Size)];

    /// <summary>Any content is a raw image: the fallback when no format's signature matches (QEMU's raw_probe scores 1).</summary>
    public int Probe(ReadOnlySpan<byte> start) => 1;

    /// <summary>A raw image is its file: the user's permissions are the file's (QEMU's raw format passes them through).</summary>
    public NodePermissions FilePermissions(NodePermissions user, bool readOnly) => user;

    public ValueTask<IBlockNode> OpenAsync(IBlockNode file, FormatOpenRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(request);
        return ValueTask.FromResult(request.Probed ? new ProbedRawNode(file) : file);
    }

    public FormatCreatePlan PlanCreate(FormatCreateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new RawCreatePlan(request.Size);
    }
}
