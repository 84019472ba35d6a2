using System.Buffers.Binary;
using System.Globalization;
using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Daemon.Tests.ToyDriver;

/// <summary>A new toy image: its header, then the disk's zeroes.</summary>
internal sealed class ToyCreatePlan(long size) : FormatCreatePlan(size, [new(CreateOption.Size, size.ToString(CultureInfo.InvariantCulture))])
{
    public override long InitialFileSize => ToyNode.DataOffset + Size;

    public override async ValueTask WriteAsync(IBlockNode file, CancellationToken cancellationToken = default)
    {
        var header = new byte[ToyNode.DataOffset];
        ToyFormatDriver.Magic.CopyTo(header);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), Size);
        await file.WriteAsync(0, header, WriteFlags.Fua, cancellationToken);
    }
}
