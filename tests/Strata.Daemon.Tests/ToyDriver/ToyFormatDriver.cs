using System.Buffers.Binary;
using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Daemon.Tests.ToyDriver;

/// <summary>
/// A format no other code knows: a header sector ("STRATTOY" and the virtual size) and the disk's
/// bytes from <see cref="ToyNode.DataOffset"/> on. It exists to show that a driver plugs in by name.
/// </summary>
internal sealed class ToyFormatDriver : IFormatDriver
{
    public const string FormatName = "toy";

    public static ReadOnlySpan<byte> Magic => "STRATTOY"u8;

    public string Name => FormatName;

    public IReadOnlyList<CreateOption> CreateOptions { get; } = [new(CreateOption.Size, CreateOptionType.Size)];

    public int Probe(ReadOnlySpan<byte> start) => start.StartsWith(Magic) ? 50 : 0;

    public NodePermissions FilePermissions(NodePermissions user, bool readOnly) => user;

    public async ValueTask<IBlockNode> OpenAsync(IBlockNode file, FormatOpenRequest request, CancellationToken cancellationToken = default)
    {
        try
        {
            var header = new byte[16];
            if (file.Size < ToyNode.DataOffset)
            {
                throw BlockException.Corrupt($"'{request.Locator}' is too short for a toy image");
            }

            await file.ReadAsync(0, header, cancellationToken);
            long size = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8));
            if (!header.AsSpan().StartsWith(Magic) || size < 0 || size > file.Size - ToyNode.DataOffset)
            {
                throw BlockException.Corrupt($"'{request.Locator}' has no valid toy header");
            }

            return new ToyNode(file, size, request.ReadOnly);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }
    }

    public FormatCreatePlan PlanCreate(FormatCreateRequest request) => new ToyCreatePlan(request.Size);
}
