using System.Buffers.Binary;
using System.Text;
using Strata.Block;
using Strata.Nbd.Protocol;
using Strata.Nbd.Transport;

namespace Strata.Nbd.Server;

/// <summary>The transmission phase (proto.md, "Transmission"): many requests in flight, replies in any order.</summary>
public sealed partial class NbdConnection
{
    /// <summary>Zero runs are looked for in steps of this many bytes (aligned on the export); shorter ones travel as data.</summary>
    private const int HoleGranule = 4096;

    /// <summary>Most chunks one sparse read is split into; past it the rest is sent as data.</summary>
    private const int MaxReadChunks = 64;

    private const int DataChunkHeaderSize = NbdWire.ChunkHeaderSize + 8;

    /// <summary>Characters of an error message sent to the client at most.</summary>
    private const int MaxErrorMessage = 256;

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

    /// <summary>
    /// Runs one request and sends its reply; gives back the slot and the budget shares at the end, and
    /// a write's payload as soon as it is written, before the reply, so a client that does not read
    /// its replies holds no payload memory.
    /// </summary>
    private async Task HandleAsync(NbdExport export, NbdRequest request, WritePayload payload, int readShare)
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
                if (request.Command == NbdCommand.Write)
                {
                    await WriteAsync(export.Gate, request, payload, RequestsCancelled);
                    GiveBack(ref payload);
                    await ReplySimpleAsync(request.Cookie);
                }
                else
                {
                    await RunAsync(export, request);
                }
            }
            catch (BlockException e)
            {
                await SendReplyAsync(ErrorReply(request, NbdErrors.FromBlockError(e.Error), e.Message));
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            await InlineCompletion.Leave();
            Abort();
        }
        catch (Exception e)
        {
            // A bug, not the client's fault: tell the client EIO and keep serving.
            await InlineCompletion.Leave();
            Log($"{request.Command} at {request.Offset} failed unexpectedly: {e}");
            try
            {
                await SendReplyAsync(ErrorReply(request, NbdErrno.IoError, "internal error"));
            }
            catch (Exception e2) when (IsDisconnect(e2))
            {
                Abort();
            }
        }
        finally
        {
            GiveBack(ref payload);
            if (readShare > 0)
            {
                _readBudget.Give(readShare);
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
            if (_metaContexts.Length == 0)
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

    private void GiveBack(ref WritePayload payload)
    {
        if (!payload.IsEmpty)
        {
            payload.ReturnTo(_pool);
            _writeBudget.Give(payload.Footprint);
            payload = default;
        }
    }

    /// <summary>
    /// NBD_CMD_WRITE: the payload's pieces in order, each with the request's FUA. Each may complete
    /// on its store's thread (<see cref="InlineCompletion"/>): what follows there starts the next
    /// piece, which the gate moves off that thread, or replies through <see cref="ReplySimpleAsync"/>.
    /// </summary>
    private static async ValueTask WriteAsync(RequestGate gate, NbdRequest request, WritePayload payload, CancellationToken cancellationToken)
    {
        var flags = (request.Flags & NbdCommandFlags.Fua) != 0 ? WriteFlags.Fua : WriteFlags.None;
        for (int i = 0; i < payload.PieceCount; i++)
        {
            ValueTask written;
            using (InlineCompletion.Allow())
            {
                written = gate.WriteAsync((long)request.Offset + ((long)i * NbdBufferPool.PieceSize), payload.Piece(i), flags, cancellationToken);
            }

            await written;
        }
    }

    private async ValueTask RunAsync(NbdExport export, NbdRequest request)
    {
        var gate = export.Gate;
        long offset = (long)request.Offset;
        bool fua = (request.Flags & NbdCommandFlags.Fua) != 0;
        switch (request.Command)
        {
            case NbdCommand.Read:
                await ReadAsync(gate, request);
                return;
            case NbdCommand.Flush:
                await gate.FlushAsync(RequestsCancelled);
                break;
            case NbdCommand.Trim:
                await gate.DiscardAsync(offset, request.Length, RequestsCancelled);
                if (fua)
                {
                    await gate.FlushAsync(RequestsCancelled);
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

                await gate.WriteZeroesAsync(offset, request.Length, zeroFlags, RequestsCancelled);
                break;
            case NbdCommand.Cache:
                // A hint: every read already goes through the page cache. Still a request, so validated.
                break;
            case NbdCommand.BlockStatus:
                await BlockStatusAsync(request, RequestsCancelled);
                return;
        }

        await ReplySimpleAsync(request.Cookie);
    }

    /// <summary>
    /// NBD_CMD_READ (proto.md, "Request types"). The data is read and sent in pieces of at most
    /// <see cref="NbdBufferPool.PieceSize"/> through one pooled buffer, each piece sent before the next
    /// is read, so a read holds one piece however long it is. A read of one piece, the common case,
    /// is read whole before anything is sent, so any error is a clean error reply.
    /// </summary>
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
                await ReplySimpleAsync(request.Cookie);
            }

            return;
        }

        int piece = Math.Min(length, NbdBufferPool.PieceSize);
        byte[] buffer = _pool.Rent(piece);
        try
        {
            // Only a read of one piece may complete on its store's thread: SendPieceAsync sends
            // without blocking there. A longer one goes on to read and send under a held send side.
            ValueTask read;
            using (piece == length ? InlineCompletion.Allow() : default)
            {
                read = gate.ReadAsync((long)request.Offset, buffer.AsMemory(NbdBufferPool.HeaderRoom, piece), RequestsCancelled);
            }

            await read;
            bool fragment = _structuredReplies && (request.Flags & NbdCommandFlags.DontFragment) == 0;
            if (piece == length)
            {
                await SendPieceAsync(request, buffer, 0, length, final: true, fragment);
            }
            else if (fragment)
            {
                await SendFragmentedAsync(gate, request, buffer);
            }
            else
            {
                await SendStreamedAsync(gate, request, buffer);
            }
        }
        finally
        {
            _pool.Return(buffer);
        }
    }

    /// <summary>
    /// A read over several pieces as content chunks, each piece sent as soon as it is read: chunks of
    /// other replies may come in between (proto.md allows it). An error on a later piece propagates and
    /// becomes the reply's final ERROR chunk, after chunks of true data.
    /// </summary>
    private async ValueTask SendFragmentedAsync(RequestGate gate, NbdRequest request, byte[] buffer)
    {
        int length = (int)request.Length;
        for (int done = 0; done < length; done += NbdBufferPool.PieceSize)
        {
            int piece = Math.Min(NbdBufferPool.PieceSize, length - done);
            if (done > 0)
            {
                await gate.ReadAsync((long)request.Offset + done, buffer.AsMemory(NbdBufferPool.HeaderRoom, piece), RequestsCancelled);
            }

            await SendPieceAsync(request, buffer, done, piece, final: done + piece == length, fragment: true);
        }
    }

    /// <summary>
    /// A read over several pieces as one message: a simple reply, or one OFFSET_DATA chunk (DF). The
    /// send side is held from the header to the last byte, each piece read while it is held. The chunk
    /// does not claim to be final, because a later piece may still fail: then the rest of the chunk is
    /// padded with zeroes and an ERROR chunk ends the reply (proto.md, NBD_CMD_READ). A simple reply
    /// cannot carry a late error; the connection is cut instead, as proto.md requires.
    /// </summary>
    private async ValueTask SendStreamedAsync(RequestGate gate, NbdRequest request, byte[] buffer)
    {
        int length = (int)request.Length;
        int headerSize = WriteReadHeader(request, buffer, NbdReplyFlags.None, 0, length);
        await InlineCompletion.Leave();
        using var message = await _writer.BeginMessageAsync();
        message.Send(buffer.AsSpan(NbdBufferPool.HeaderRoom - headerSize, headerSize + NbdBufferPool.PieceSize));
        for (int done = NbdBufferPool.PieceSize; done < length; done += NbdBufferPool.PieceSize)
        {
            int piece = Math.Min(NbdBufferPool.PieceSize, length - done);
            var data = buffer.AsMemory(NbdBufferPool.HeaderRoom, piece);
            try
            {
                await gate.ReadAsync((long)request.Offset + done, data, RequestsCancelled);
            }
            catch (Exception e) when (!IsDisconnect(e))
            {
                var (error, text) = e is BlockException b ? (NbdErrors.FromBlockError(b.Error), b.Message) : (NbdErrno.IoError, "internal error");
                Log($"READ offset {request.Offset} length {length}: failed after {done} bytes were sent: {error} ({e.Message})");
                if (!_structuredReplies)
                {
                    Abort();
                    return;
                }

                var zeroes = buffer.AsSpan(NbdBufferPool.HeaderRoom, NbdBufferPool.PieceSize);
                zeroes.Clear();
                for (; done < length; done += NbdBufferPool.PieceSize)
                {
                    message.Send(zeroes[..Math.Min(NbdBufferPool.PieceSize, length - done)]);
                }

                message.Send(ErrorChunk(request.Cookie, error, text));
                return;
            }

            message.Send(data.Span);
        }

        if (_structuredReplies)
        {
            Span<byte> none = stackalloc byte[NbdWire.ChunkHeaderSize];
            NbdReplyHeaders.WriteChunk(none, NbdReplyFlags.Done, NbdReplyType.None, request.Cookie, 0);
            message.Send(none);
        }
    }

    /// <summary>
    /// Writes, in front of the data in <paramref name="buffer"/>, the reply header for
    /// <paramref name="length"/> bytes at request offset + <paramref name="at"/>: an OFFSET_DATA chunk
    /// header, or a simple reply header; returns its size.
    /// </summary>
    private int WriteReadHeader(NbdRequest request, byte[] buffer, NbdReplyFlags flags, int at, int length)
    {
        if (!_structuredReplies)
        {
            NbdReplyHeaders.WriteSimple(buffer.AsSpan(NbdBufferPool.HeaderRoom - NbdWire.SimpleReplyHeaderSize), NbdErrno.None, request.Cookie);
            return NbdWire.SimpleReplyHeaderSize;
        }

        var header = buffer.AsSpan(NbdBufferPool.HeaderRoom - DataChunkHeaderSize, DataChunkHeaderSize);
        NbdReplyHeaders.WriteChunk(header, flags, NbdReplyType.OffsetData, request.Cookie, 8 + length);
        BinaryPrimitives.WriteUInt64BigEndian(header[NbdWire.ChunkHeaderSize..], request.Offset + (ulong)at);
        return DataChunkHeaderSize;
    }

    /// <summary>
    /// Sends one piece of a read (the <paramref name="length"/> bytes read into <paramref name="buffer"/>
    /// for request offset + <paramref name="at"/>): as hole and data chunks when fragmenting is allowed
    /// and it holds whole zero granules, else as one chunk, or the whole simple reply. Sent at once if
    /// the socket takes it (from a store's callback thread too, <see cref="InlineCompletion"/>), else
    /// finished by <see cref="FinishReplyAsync"/>; one with holes, off a callback thread under the send side.
    /// </summary>
    private ValueTask SendPieceAsync(NbdRequest request, byte[] buffer, int at, int length, bool final, bool fragment)
    {
        if (fragment && length >= 2 * HoleGranule)
        {
            long start = (long)request.Offset + at;
            Span<(int At, int Length, bool Hole)> runs = stackalloc (int, int, bool)[MaxReadChunks];
            int count = FindRuns(start, buffer.AsSpan(NbdBufferPool.HeaderRoom, length), runs);
            if (count != 1 || runs[0].Hole)
            {
                if (InlineCompletion.IsRunning || !_writer.TryBeginMessage(out var lease))
                {
                    return SendSparseAsync(request.Cookie, start, buffer, length, final);
                }

                using (lease)
                {
                    SendRuns(lease, request.Cookie, start, buffer, runs[..count], final);
                }

                return ValueTask.CompletedTask;
            }
        }

        int headerSize = WriteReadHeader(request, buffer, final ? NbdReplyFlags.Done : NbdReplyFlags.None, at, length);
        return SendReplyAsync(buffer.AsMemory(NbdBufferPool.HeaderRoom - headerSize, headerSize + length));
    }

    private async ValueTask SendSparseAsync(ulong cookie, long start, byte[] buffer, int length, bool final)
    {
        await InlineCompletion.Leave();
        using var lease = await _writer.BeginMessageAsync();
        Span<(int At, int Length, bool Hole)> runs = stackalloc (int, int, bool)[MaxReadChunks];
        int count = FindRuns(start, buffer.AsSpan(NbdBufferPool.HeaderRoom, length), runs);
        SendRuns(lease, cookie, start, buffer, runs[..count], final);
    }

    /// <summary>
    /// Sends, under <paramref name="lease"/>, a piece whose data holds zero runs of whole granules as
    /// OFFSET_HOLE and OFFSET_DATA chunks, one per run (<see cref="FindRuns"/>).
    /// </summary>
    /// <remarks>
    /// Holes are found in the bytes read, not by asking block status first: SEEK_HOLE on tmpfs scans to
    /// the end of the file, which made every large read cost a walk of the whole image. A granule of
    /// random data is rejected at its first byte, so data costs almost nothing to check; a zero run
    /// also covers unallocated and zero clusters, which is what OFFSET_HOLE promises (reads as zeroes).
    /// Chunks are written in place: a data run's chunk header, and the chunk of the hole before it, go
    /// into that hole's bytes (a hole is at least one granule, and its bytes are never sent) or into
    /// the header room before the first run, so each data run leaves in one send with no copy.
    /// </remarks>
    private static void SendRuns(SocketWriter.Lease lease, ulong cookie, long start, byte[] buffer, ReadOnlySpan<(int At, int Length, bool Hole)> runs, bool final)
    {
        int count = runs.Length;
        const int holeChunkSize = NbdWire.ChunkHeaderSize + 12;
        for (int i = 0; i < count; i++)
        {
            var (runAt, runLength, hole) = runs[i];
            var flags = final && i == count - 1 ? NbdReplyFlags.Done : NbdReplyFlags.None;
            int from = NbdBufferPool.HeaderRoom + runAt;
            if (hole)
            {
                if (i < count - 1)
                {
                    // Sent with the data run that follows, from this hole's own bytes.
                    continue;
                }

                WriteHoleChunk(buffer.AsSpan(from, holeChunkSize), flags, cookie, start + runAt, runLength);
                lease.Send(buffer.AsSpan(from, holeChunkSize));
                continue;
            }

            int end = from + runLength;
            from -= DataChunkHeaderSize;
            NbdReplyHeaders.WriteChunk(buffer.AsSpan(from), flags, NbdReplyType.OffsetData, cookie, 8 + runLength);
            BinaryPrimitives.WriteInt64BigEndian(buffer.AsSpan(from + NbdWire.ChunkHeaderSize), start + runAt);
            if (i > 0)
            {
                var (holeAt, holeLength, _) = runs[i - 1];
                from -= holeChunkSize;
                WriteHoleChunk(buffer.AsSpan(from, holeChunkSize), NbdReplyFlags.None, cookie, start + holeAt, holeLength);
            }

            lease.Send(buffer.AsSpan(from, end - from));
        }
    }

    /// <summary>
    /// Splits the <paramref name="data"/> read for export offset <paramref name="start"/> into
    /// alternating runs of zero granules (holes) and data, at most <see cref="MaxReadChunks"/>; the count.
    /// </summary>
    private static int FindRuns(long start, ReadOnlySpan<byte> data, Span<(int At, int Length, bool Hole)> runs)
    {
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
                // Too fragmented: the rest travels as data in the last data run (runs alternate, and
                // the in-place headers of SendRuns rely on a hole before every data run but the first).
                if (runs[count - 1].Hole)
                {
                    count--;
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

        return count;
    }

    private static void WriteHoleChunk(Span<byte> chunk, NbdReplyFlags flags, ulong cookie, long offset, int length)
    {
        NbdReplyHeaders.WriteChunk(chunk, flags, NbdReplyType.OffsetHole, cookie, 12);
        BinaryPrimitives.WriteInt64BigEndian(chunk[NbdWire.ChunkHeaderSize..], offset);
        BinaryPrimitives.WriteInt32BigEndian(chunk[(NbdWire.ChunkHeaderSize + 8)..], length);
    }

    /// <summary>A reply of no data, as <see cref="SendPieceAsync"/>.</summary>
    private ValueTask ReplySimpleAsync(ulong cookie)
    {
        Span<byte> reply = stackalloc byte[NbdWire.SimpleReplyHeaderSize];
        NbdReplyHeaders.WriteSimple(reply, NbdErrno.None, cookie);
        var attempt = _writer.TrySend(reply);

        // Copied only when it must wait: it lives on this stack.
        return attempt.IsWhole ? ValueTask.CompletedTask : FinishReplyAsync(reply.ToArray(), attempt);
    }

    /// <summary>
    /// Sends what <see cref="SocketWriter.TrySend"/> could not, off any callback thread: the rest
    /// under the send side it left held, or, when nothing left, the whole reply once the send side
    /// is free. Waiting for the send side holds no thread; only its holder blocks in the socket, so a
    /// client that stops reading its replies ties up one thread, not one per request in flight.
    /// </summary>
    private async ValueTask FinishReplyAsync(ReadOnlyMemory<byte> reply, SocketWriter.SendAttempt attempt)
    {
        await InlineCompletion.Leave();
        if (attempt.Sent > 0)
        {
            using var held = attempt.Held;
            held.Send(reply.Span[attempt.Sent..]);
            return;
        }

        using var lease = await _writer.BeginMessageAsync();
        lease.Send(reply.Span);
    }

    private void SendDoneNone(ulong cookie)
    {
        Span<byte> reply = stackalloc byte[NbdWire.ChunkHeaderSize];
        NbdReplyHeaders.WriteChunk(reply, NbdReplyFlags.Done, NbdReplyType.None, cookie, 0);
        _writer.Send(reply);
    }

    /// <summary>Sends <see cref="ErrorReply"/>, blocking (from the connection thread).</summary>
    private void SendError(NbdRequest request, NbdErrno error, string message) => _writer.Send(ErrorReply(request, error, message));

    /// <summary>
    /// An error reply, logged: a structured NBD_REPLY_TYPE_ERROR (with its message) for the commands
    /// whose replies are structured, a simple reply otherwise.
    /// </summary>
    private byte[] ErrorReply(NbdRequest request, NbdErrno error, string message)
    {
        Log($"{request.Command} offset {request.Offset} length {request.Length}: {error} ({message})");
        if (_structuredReplies && request.Command is NbdCommand.Read or NbdCommand.BlockStatus)
        {
            return ErrorChunk(request.Cookie, error, message);
        }

        var reply = new byte[NbdWire.SimpleReplyHeaderSize];
        NbdReplyHeaders.WriteSimple(reply, error, request.Cookie);
        return reply;
    }

    /// <summary>A whole reply that stays valid until sent, as <see cref="SendPieceAsync"/> sends it.</summary>
    private ValueTask SendReplyAsync(ReadOnlyMemory<byte> reply)
    {
        var attempt = _writer.TrySend(reply.Span);
        return attempt.IsWhole ? ValueTask.CompletedTask : FinishReplyAsync(reply, attempt);
    }

    /// <summary>A final NBD_REPLY_TYPE_ERROR chunk; the message is cut to 256 characters, so no error costs more than a few hundred bytes of output.</summary>
    private static byte[] ErrorChunk(ulong cookie, NbdErrno error, string message)
    {
        byte[] text = Encoding.UTF8.GetBytes(message.Length > MaxErrorMessage ? message[..MaxErrorMessage] : message);
        var chunk = new byte[NbdWire.ChunkHeaderSize + 6 + text.Length];
        NbdReplyHeaders.WriteChunk(chunk, NbdReplyFlags.Done, NbdReplyType.Error, cookie, 6 + text.Length);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(NbdWire.ChunkHeaderSize), (uint)error);
        BinaryPrimitives.WriteUInt16BigEndian(chunk.AsSpan(NbdWire.ChunkHeaderSize + 4), (ushort)text.Length);
        text.CopyTo(chunk, NbdWire.ChunkHeaderSize + 6);
        return chunk;
    }
}
