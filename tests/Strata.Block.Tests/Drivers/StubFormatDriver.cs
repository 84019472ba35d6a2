using Strata.Block.Drivers;

namespace Strata.Block.Tests.Drivers;

/// <summary>A format driver that only has a name and a probe: enough for the registry's lookups.</summary>
internal sealed class StubFormatDriver(string name, byte[]? magic = null) : IFormatDriver
{
    public string Name { get; } = name;

    public IReadOnlyList<CreateOption> CreateOptions { get; } = [new(CreateOption.Size, CreateOptionType.Size)];

    /// <summary>A magic at offset 0 scores 100; without one the driver takes anything, as raw does.</summary>
    public int Probe(ReadOnlySpan<byte> start) => magic is null ? 1 : start.StartsWith(magic) ? 100 : 0;

    public NodePermissions FilePermissions(NodePermissions user, bool readOnly) => user;

    public ValueTask<IBlockNode> OpenAsync(IBlockNode file, FormatOpenRequest request, CancellationToken cancellationToken = default)
        => ValueTask.FromResult(file);

    public FormatCreatePlan PlanCreate(FormatCreateRequest request) => throw new NotSupportedException();
}
