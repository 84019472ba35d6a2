using System.Buffers.Binary;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server.MetaContexts;

namespace Strata.Nbd.Server;

/// <summary>NBD_CMD_BLOCK_STATUS (proto.md, "Metadata querying"): one chunk per context the client set.</summary>
public sealed partial class NbdConnection
{
    /// <summary>Most runs one context is asked for per request (a client asks again from where the reply ends).</summary>
    private const int MaxStatusExtents = 1024;

    /// <summary>
    /// One NBD_REPLY_TYPE_BLOCK_STATUS chunk per negotiated context, in the order they were set, each
    /// described by its own provider in its own boundaries.
    /// </summary>
    private async ValueTask BlockStatusAsync(NbdRequest request, CancellationToken cancellationToken)
    {
        bool one = (request.Flags & NbdCommandFlags.RequestOne) != 0;
        var contexts = _metaContexts;
        var described = new List<(uint Length, uint Flags)>[contexts.Length];
        int total = 0;
        for (int i = 0; i < contexts.Length; i++)
        {
            described[i] = await DescribeAsync(contexts[i].Context, (long)request.Offset, request.Length, one, cancellationToken);
            total += NbdWire.ChunkHeaderSize + 4 + (8 * described[i].Count);
        }

        byte[] buffer = Rent(total);
        try
        {
            int at = 0;
            for (int i = 0; i < contexts.Length; i++)
            {
                var descriptors = described[i];
                var flags = i == contexts.Length - 1 ? NbdReplyFlags.Done : NbdReplyFlags.None;
                NbdReplyHeaders.WriteChunk(buffer.AsSpan(at), flags, NbdReplyType.BlockStatus, request.Cookie, 4 + (8 * descriptors.Count));
                at += NbdWire.ChunkHeaderSize;
                BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at), contexts[i].Id);
                at += 4;
                foreach (var (length, value) in descriptors)
                {
                    BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at), length);
                    BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at + 4), value);
                    at += 8;
                }
            }

            await SendReplyAsync(buffer.AsMemory(0, total));
        }
        finally
        {
            Return(buffer);
        }
    }

    /// <summary>
    /// The descriptors of one context over [offset, offset+length): neighbouring runs with the same
    /// flags merged, at most <see cref="MaxStatusExtents"/> runs asked for; REQ_ONE keeps the first.
    /// </summary>
    private static async ValueTask<List<(uint Length, uint Flags)>> DescribeAsync(INbdMetaContext context, long offset, uint length, bool one,
        CancellationToken cancellationToken)
    {
        var descriptors = new List<(uint Length, uint Flags)>();
        long end = offset + length;
        for (int asked = 0; offset < end && asked < MaxStatusExtents; asked++)
        {
            var run = await context.GetExtentAsync(offset, end - offset, cancellationToken);
            if (run.Length <= 0 || run.Length > end - offset)
            {
                throw new InvalidOperationException($"metadata context {context.Name} answered a run of {run.Length} bytes at {offset} for {end - offset} asked");
            }

            if (descriptors.Count > 0 && descriptors[^1].Flags == run.Flags)
            {
                descriptors[^1] = (descriptors[^1].Length + (uint)run.Length, run.Flags);
            }
            else if (one && descriptors.Count == 1)
            {
                break;
            }
            else
            {
                descriptors.Add(((uint)run.Length, run.Flags));
            }

            offset += run.Length;
        }

        return descriptors;
    }
}
