using System.Buffers.Binary;
using System.Text;
using Strata.Block;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Server;

/// <summary>The transmission phase (proto.md, "Transmission"): many requests in flight, replies in any order.</summary>
public sealed partial class NbdConnection
{
    /// <summary>Zero runs are looked for in steps of this many bytes (aligned on the export); shorter ones travel as data.</summary>
    private const int HoleGranule = 4096;

    /// <summary>Most extents one reply describes (a client asks again from where the reply ends).</summary>
    private const int MaxStatusExtents = 1024;

    /// <summary>Most chunks one sparse read is split into; past it the rest is sent as data.</summary>
    private const int MaxReadChunks = 64;

    private const int DataChunkHeaderSize = NbdWire.ChunkHeaderSize + 8;

    private void Transmit()
    {
        var export = _export!;
        var header = new byte[NbdWire.RequestHeaderSize];
        bool holdingSlot = false;
        TransmissionStarted();
        try
        {
            while (!_stopping)
            {
                // Replies of requests run inline are gathered while more requests are already here,
                // and sent before the loop could block (on the socket or on a free slot).
                if (_reader.Buffered >= NbdWire.RequestHeaderSize)
                {
                    _writer.Cork();
                }
                else
                {
                    _writer.Uncork();
                }

                if (!_slots.Wait(0))
                {
                    _writer.Uncork();
                    _slots.Wait();
                }

                holdingSlot = true;
                _reader.ReadExactly(header);
                if (!NbdRequest.TryRead(header, out var request))
                {
                    // Without a valid header the stream cannot be resynchronized (proto.md: bad magic is fatal).
                    Log("bad request magic: disconnecting");
                    return;
                }

                if (request.Command == NbdCommand.Disconnect)
                {
                    // "The server MUST handle all outstanding requests" before closing.
                    Log("client sent NBD_CMD_DISC");
                    return;
                }

                if (!RequestStarted())
                {
                    // The server closed this connection for a new client just as the request came.
                    return;
                }

                byte[]? payload = null;
                if (request.Command == NbdCommand.Write)
                {
                    if (request.Length > (uint)_options.MaxPayload)
                    {
                        // The payload is drained so the stream stays in step; the request fails.
                        _writer.Uncork();
                        _reader.Skip(request.Length);
                        holdingSlot = false;
                        Fail(request, NbdErrno.Overflow, $"write of {request.Length} bytes exceeds the maximum of {_options.MaxPayload}");
                        continue;
                    }

                    if (_reader.Buffered < request.Length)
                    {
                        _writer.Uncork();
                    }

                    payload = Rent((int)request.Length);
                    try
                    {
                        _reader.ReadExactly(payload.AsSpan(0, (int)request.Length));
                    }
                    catch
                    {
                        Return(payload);
                        throw;
                    }
                }

                holdingSlot = false;
                _ = HandleAsync(export, request, payload);
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            Log(_stopping ? "server stopping: no more requests read" : $"connection ended: {e.Message}");
        }
        finally
        {
            if (holdingSlot)
            {
                _slots.Release();
            }

            try
            {
                _writer.Uncork();
            }
            catch (Exception e) when (IsDisconnect(e))
            {
                Abort();
            }

            // Wait until every request in flight has answered (each gives its slot back).
            for (int i = 0; i < _options.MaxRequestsInFlight; i++)
            {
                _slots.Wait();
            }
        }
    }

    private void Fail(NbdRequest request, NbdErrno error, string message)
    {
        try
        {
            SendError(request, error, message);
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            Abort();
        }
        finally
        {
            RequestFinished();
            _slots.Release();
        }
    }

    /// <summary>Runs one request and sends its reply; gives the slot (and the write payload) back at the end.</summary>
    private async Task HandleAsync(NbdExport export, NbdRequest request, byte[]? payload)
    {
        try
        {
            var (error, message) = Check(export, request);
            if (error != NbdErrno.None)
            {
                SendError(request, error, message!);
                return;
            }

            try
            {
                await RunAsync(export, request, payload);
            }
            catch (BlockException e)
            {
                SendError(request, NbdErrors.FromBlockError(e.Error), e.Message);
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            Abort();
        }
        catch (Exception e)
        {
            // A bug, not the client's fault: tell the client EIO and keep serving.
            Log($"{request.Command} at {request.Offset} failed unexpectedly: {e}");
            try
            {
                SendError(request, NbdErrno.IoError, "internal error");
            }
            catch (Exception e2) when (IsDisconnect(e2))
            {
                Abort();
            }
        }
        finally
        {
            if (payload is not null)
            {
                Return(payload);
            }

            RequestFinished();
            _slots.Release();
        }
    }

    /// <summary>Checks a request against the wire rules before any I/O (proto.md, "Request types" and "Error values").</summary>
    private (NbdErrno Error, string? Message) Check(NbdExport export, NbdRequest request)
    {
        var allowed = request.Command switch
        {
            NbdCommand.Read => _structuredReplies ? NbdCommandFlags.DontFragment : NbdCommandFlags.None,
            NbdCommand.Write or NbdCommand.Trim => NbdCommandFlags.Fua,
            NbdCommand.WriteZeroes => NbdCommandFlags.Fua | NbdCommandFlags.NoHole | NbdCommandFlags.FastZero,
            NbdCommand.BlockStatus => NbdCommandFlags.RequestOne,
            NbdCommand.Flush or NbdCommand.Cache => NbdCommandFlags.None,
            _ => (NbdCommandFlags?)null,
        };
        if (allowed is not { } mask)
        {
            return (NbdErrno.InvalidArgument, $"unknown command {(ushort)request.Command}");
        }

        if ((request.Flags & ~mask) != 0)
        {
            return (NbdErrno.InvalidArgument, $"flags 0x{(ushort)request.Flags:x} are not valid for {request.Command}");
        }

        if (request.Command == NbdCommand.Flush)
        {
            return default;
        }

        bool write = request.Command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes;
        if (write && export.ReadOnly)
        {
            return (NbdErrno.PermissionDenied, "the export is read-only");
        }

        long size = export.Gate.Size;
        if (request.Offset > (ulong)size || request.Length > (ulong)size - request.Offset)
        {
            // "ENOSPC ... for a write beyond the end of the export"; EINVAL for the others.
            return (write ? NbdErrno.NoSpace : NbdErrno.InvalidArgument,
                $"request at offset {request.Offset} length {request.Length} is beyond the end of the {size}-byte export");
        }

        if (request.Command == NbdCommand.Read && request.Length > (uint)_options.MaxPayload)
        {
            return (NbdErrno.Overflow, $"read of {request.Length} bytes exceeds the maximum of {_options.MaxPayload}");
        }

        if (request.Command == NbdCommand.BlockStatus)
        {
            if (!_baseAllocation && !_allocationDepth)
            {
                return (NbdErrno.InvalidArgument, "no metadata context was negotiated");
            }

            if (request.Length == 0)
            {
                return (NbdErrno.InvalidArgument, "block status of an empty range");
            }
        }

        if (request.Command == NbdCommand.WriteZeroes && (request.Flags & NbdCommandFlags.FastZero) != 0
            && (export.Gate.Root.Capabilities & NodeCapabilities.FastZero) == 0)
        {
            return (NbdErrno.NotSupported, "fast zeroing is not supported by this export");
        }

        return default;
    }

    private async ValueTask RunAsync(NbdExport export, NbdRequest request, byte[]? payload)
    {
        var gate = export.Gate;
        long offset = (long)request.Offset;
        int length = (int)Math.Min(request.Length, int.MaxValue);
        bool fua = (request.Flags & NbdCommandFlags.Fua) != 0;
        switch (request.Command)
        {
            case NbdCommand.Read:
                await ReadAsync(gate, request);
                return;
            case NbdCommand.Write:
                await gate.WriteAsync(offset, payload.AsMemory(0, length), fua ? WriteFlags.Fua : WriteFlags.None);
                break;
            case NbdCommand.Flush:
                await gate.FlushAsync();
                break;
            case NbdCommand.Trim:
                await gate.DiscardAsync(offset, request.Length);
                if (fua)
                {
                    await gate.FlushAsync();
                }

                break;
            case NbdCommand.WriteZeroes:
                var zeroFlags = ZeroFlags.None;
                if ((request.Flags & NbdCommandFlags.NoHole) == 0)
                {
                    zeroFlags |= ZeroFlags.MayUnmap;
                }

                if ((request.Flags & NbdCommandFlags.FastZero) != 0)
                {
                    zeroFlags |= ZeroFlags.NoFallback;
                }

                if (fua)
                {
                    zeroFlags |= ZeroFlags.Fua;
                }

                await gate.WriteZeroesAsync(offset, request.Length, zeroFlags);
                break;
            case NbdCommand.Cache:
                // A hint: every read already goes through the page cache. Still a request, so validated.
                break;
            case NbdCommand.BlockStatus:
                await BlockStatusAsync(gate, request);
                return;
        }

        SendSimple(request.Cookie);
    }

    private async ValueTask ReadAsync(RequestGate gate, NbdRequest request)
    {
        int length = (int)request.Length;
        if (length == 0)
        {
            // proto.md, NBD_CMD_READ: the reply to a zero-length read is unspecified, but it must follow
            // the negotiated mode; a lone NONE chunk is the structured answer, a bare header the simple one.
            if (_structuredReplies)
            {
                SendDoneNone(request.Cookie);
            }
            else
            {
                SendSimple(request.Cookie);
            }

            return;
        }

        int headerSize = _structuredReplies ? DataChunkHeaderSize : NbdWire.SimpleReplyHeaderSize;
        byte[] buffer = Rent(headerSize + length);
        try
        {
            await gate.ReadAsync((long)request.Offset, buffer.AsMemory(headerSize, length));
            if (_structuredReplies && length >= 2 * HoleGranule && (request.Flags & NbdCommandFlags.DontFragment) == 0
                && TrySendSparse(request, buffer.AsSpan(headerSize, length)))
            {
                return;
            }

            if (_structuredReplies)
            {
                NbdReplyHeaders.WriteChunk(buffer, NbdReplyFlags.Done, NbdReplyType.OffsetData, request.Cookie, 8 + length);
                BinaryPrimitives.WriteUInt64BigEndian(buffer.AsSpan(NbdWire.ChunkHeaderSize), request.Offset);
            }
            else
            {
                NbdReplyHeaders.WriteSimple(buffer, NbdErrno.None, request.Cookie);
            }

            _writer.Send(buffer.AsSpan(0, headerSize + length));
        }
        finally
        {
            Return(buffer);
        }
    }

    /// <summary>
    /// Sends a read whose data holds zero runs of whole granules as OFFSET_HOLE and OFFSET_DATA chunks in
    /// one message; false (nothing sent) when there is no such run.
    /// </summary>
    /// <remarks>
    /// Holes are found in the bytes read, not by asking block status first: SEEK_HOLE on tmpfs scans to
    /// the end of the file, which made every large read cost a walk of the whole image. A granule of
    /// random data is rejected at its first byte, so data costs almost nothing to check; a zero run
    /// also covers unallocated and zero clusters, which is what OFFSET_HOLE promises (reads as zeroes).
    /// </remarks>
    private bool TrySendSparse(NbdRequest request, ReadOnlySpan<byte> data)
    {
        long start = (long)request.Offset;
        Span<(int At, int Length, bool Hole)> runs = stackalloc (int, int, bool)[MaxReadChunks];
        int count = 0;
        int at = 0;
        while (at < data.Length)
        {
            // Granules are aligned on the export, so the first and last may be short.
            int granule = (int)Math.Min(HoleGranule - ((start + at) % HoleGranule), data.Length - at);
            bool hole = granule == HoleGranule && !data.Slice(at, granule).ContainsAnyExcept((byte)0);
            if (count > 0 && runs[count - 1].Hole == hole)
            {
                runs[count - 1].Length += granule;
            }
            else if (count == MaxReadChunks)
            {
                // Too fragmented: the rest travels as data in the last chunk.
                if (runs[count - 1].Hole)
                {
                    runs[count - 1].Hole = false;
                }

                runs[count - 1].Length = data.Length - runs[count - 1].At;
                break;
            }
            else
            {
                runs[count++] = (at, granule, hole);
            }

            at += granule;
        }

        if (count == 1 && !runs[0].Hole)
        {
            return false;
        }

        int total = 0;
        for (int i = 0; i < count; i++)
        {
            total += runs[i].Hole ? NbdWire.ChunkHeaderSize + 12 : DataChunkHeaderSize + runs[i].Length;
        }

        byte[] message = Rent(total);
        try
        {
            int put = 0;
            for (int i = 0; i < count; i++)
            {
                var (runAt, runLength, hole) = runs[i];
                var flags = i == count - 1 ? NbdReplyFlags.Done : NbdReplyFlags.None;
                if (hole)
                {
                    NbdReplyHeaders.WriteChunk(message.AsSpan(put), flags, NbdReplyType.OffsetHole, request.Cookie, 12);
                    BinaryPrimitives.WriteInt64BigEndian(message.AsSpan(put + NbdWire.ChunkHeaderSize), start + runAt);
                    BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(put + NbdWire.ChunkHeaderSize + 8), runLength);
                    put += NbdWire.ChunkHeaderSize + 12;
                }
                else
                {
                    NbdReplyHeaders.WriteChunk(message.AsSpan(put), flags, NbdReplyType.OffsetData, request.Cookie, 8 + runLength);
                    BinaryPrimitives.WriteInt64BigEndian(message.AsSpan(put + NbdWire.ChunkHeaderSize), start + runAt);
                    data.Slice(runAt, runLength).CopyTo(message.AsSpan(put + DataChunkHeaderSize));
                    put += DataChunkHeaderSize + runLength;
                }
            }

            _writer.Send(message.AsSpan(0, total));
        }
        finally
        {
            Return(message);
        }

        return true;
    }

    /// <summary>One NBD_REPLY_TYPE_BLOCK_STATUS chunk per negotiated context (proto.md, "Metadata querying").</summary>
    private async ValueTask BlockStatusAsync(RequestGate gate, NbdRequest request)
    {
        long position = (long)request.Offset;
        long end = position + request.Length;
        var extents = new List<ChainExtent>();
        while (position < end && extents.Count < MaxStatusExtents)
        {
            var extent = await gate.GetBlockStatusAsync(position, end - position);
            extents.Add(extent);
            position = extent.End;
        }

        bool one = (request.Flags & NbdCommandFlags.RequestOne) != 0;
        var contexts = new List<(uint Id, List<(uint Length, uint Flags)> Descriptors)>();
        if (_baseAllocation)
        {
            contexts.Add((BaseAllocationId, Describe(extents, static e =>
                (e.IsData && e.IsPresent ? 0 : NbdWire.StateHole) | (e.IsZero ? NbdWire.StateZero : 0), one)));
        }

        if (_allocationDepth)
        {
            contexts.Add((AllocationDepthId, Describe(extents, static e => e.IsPresent ? (uint)e.Depth + 1 : 0, one)));
        }

        int total = 0;
        foreach (var (_, descriptors) in contexts)
        {
            total += NbdWire.ChunkHeaderSize + 4 + (8 * descriptors.Count);
        }

        byte[] buffer = Rent(total);
        try
        {
            int at = 0;
            for (int i = 0; i < contexts.Count; i++)
            {
                var (id, descriptors) = contexts[i];
                var flags = i == contexts.Count - 1 ? NbdReplyFlags.Done : NbdReplyFlags.None;
                NbdReplyHeaders.WriteChunk(buffer.AsSpan(at), flags, NbdReplyType.BlockStatus, request.Cookie, 4 + (8 * descriptors.Count));
                at += NbdWire.ChunkHeaderSize;
                BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at), id);
                at += 4;
                foreach (var (length, value) in descriptors)
                {
                    BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at), length);
                    BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at + 4), value);
                    at += 8;
                }
            }

            _writer.Send(buffer.AsSpan(0, total));
        }
        finally
        {
            Return(buffer);
        }
    }

    /// <summary>Merges neighbouring extents with the same value for one context; REQ_ONE keeps the first.</summary>
    private static List<(uint Length, uint Flags)> Describe(List<ChainExtent> extents, Func<ChainExtent, uint> value, bool one)
    {
        var descriptors = new List<(uint Length, uint Flags)>();
        foreach (var extent in extents)
        {
            uint flags = value(extent);
            if (descriptors.Count > 0 && descriptors[^1].Flags == flags)
            {
                descriptors[^1] = (descriptors[^1].Length + (uint)extent.Length, flags);
            }
            else
            {
                if (one && descriptors.Count == 1)
                {
                    break;
                }

                descriptors.Add(((uint)extent.Length, flags));
            }
        }

        return descriptors;
    }

    private void SendSimple(ulong cookie)
    {
        Span<byte> reply = stackalloc byte[NbdWire.SimpleReplyHeaderSize];
        NbdReplyHeaders.WriteSimple(reply, NbdErrno.None, cookie);
        _writer.Send(reply);
    }

    private void SendDoneNone(ulong cookie)
    {
        Span<byte> reply = stackalloc byte[NbdWire.ChunkHeaderSize];
        NbdReplyHeaders.WriteChunk(reply, NbdReplyFlags.Done, NbdReplyType.None, cookie, 0);
        _writer.Send(reply);
    }

    /// <summary>
    /// An error reply: a structured NBD_REPLY_TYPE_ERROR (with its message) for the commands whose
    /// replies are structured, a simple reply otherwise.
    /// </summary>
    private void SendError(NbdRequest request, NbdErrno error, string message)
    {
        Log($"{request.Command} offset {request.Offset} length {request.Length}: {error} ({message})");
        if (_structuredReplies && request.Command is NbdCommand.Read or NbdCommand.BlockStatus)
        {
            byte[] text = Encoding.UTF8.GetBytes(message.Length > 256 ? message[..256] : message);
            var chunk = new byte[NbdWire.ChunkHeaderSize + 6 + text.Length];
            NbdReplyHeaders.WriteChunk(chunk, NbdReplyFlags.Done, NbdReplyType.Error, request.Cookie, 6 + text.Length);
            BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(NbdWire.ChunkHeaderSize), (uint)error);
            BinaryPrimitives.WriteUInt16BigEndian(chunk.AsSpan(NbdWire.ChunkHeaderSize + 4), (ushort)text.Length);
            text.CopyTo(chunk, NbdWire.ChunkHeaderSize + 6);
            _writer.Send(chunk);
            return;
        }

        var reply = new byte[NbdWire.SimpleReplyHeaderSize];
        NbdReplyHeaders.WriteSimple(reply, error, request.Cookie);
        _writer.Send(reply);
    }
}
