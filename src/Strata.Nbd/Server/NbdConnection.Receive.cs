using Strata.Nbd.Protocol;

namespace Strata.Nbd.Server;

/// <summary>
/// The receive side of the transmission phase: requests are read one at a time, each started as soon
/// as it is read (proto.md, "Transmission": replies may come in any order).
/// </summary>
/// <remarks>
/// The connection's thread reads a request, runs it inline until it waits, and reads the next. Only
/// this thread reads the socket, takes slots and budget shares, and corks or uncorks replies: it
/// uncorks before it could block (on the socket, a slot or a budget), so a gathered reply always goes out.
/// </remarks>
public sealed partial class NbdConnection
{
    private void Transmit()
    {
        var export = _export!;
        TransmissionStarted();
        try
        {
            ReceiveRequests(export, new byte[NbdWire.RequestHeaderSize]);
        }
        finally
        {
            try
            {
                _writer.Uncork();
            }
            catch (Exception e) when (IsDisconnect(e))
            {
                Abort();
            }

            // Wait until every request in flight has answered (each gives its slot back), unless the
            // connection is gone: then no answer can reach the client, and a hung request must not
            // hold the connection (and the server's stop) forever.
            WaitForRequestsInFlight();
        }
    }

    private void ReceiveRequests(NbdExport export, byte[] header)
    {
        while (true)
        {
            bool more;
            bool run;
            NbdRequest request;
            WritePayload payload;
            int readShare;
            try
            {
                more = ReceiveOne(header, out run, out request, out payload, out readShare);
            }
            catch (Exception e) when (IsDisconnect(e))
            {
                Log(_stopping ? "server stopping: no more requests read" : $"connection ended: {e.Message}");
                if (!_stopping)
                {
                    // The client is gone: what it still has in flight is cancelled.
                    CancelRequests();
                }

                more = false;
                run = false;
                request = default;
                payload = default;
                readShare = 0;
            }

            if (!more)
            {
                return;
            }

            if (run)
            {
                _ = HandleAsync(export, request, payload, readShare);
            }
        }
    }

    /// <summary>
    /// Reads one request, with a write's payload, taking its slot and budget share first; false when
    /// receiving is over (stopping, NBD_CMD_DISC, a bad magic, the connection claimed). When
    /// <paramref name="run"/> is true the caller must start the request, which then owns the slot and the share.
    /// </summary>
    private bool ReceiveOne(byte[] header, out bool run, out NbdRequest request, out WritePayload payload, out int readShare)
    {
        run = false;
        request = default;
        payload = default;
        readShare = 0;
        if (_stopping || RequestsCancelled.IsCancellationRequested)
        {
            // Stopping, or the connection is gone (a reply failed to send, on this thread or another):
            // requests still in the receive buffer are not started, so none takes a buffer for nothing.
            return false;
        }

        // Replies of requests run inline are gathered while more requests are already here,
        // and sent before the thread could block (on the socket or on a free slot).
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
            _slots.Wait(RequestsCancelled);
        }

        bool holdingSlot = true;
        try
        {
            _reader.ReadExactly(header);
            if (!NbdRequest.TryRead(header, out request))
            {
                // Without a valid header the stream cannot be resynchronized (proto.md: bad magic is fatal).
                Log("bad request magic: disconnecting");
                return false;
            }

            if (request.Command == NbdCommand.Disconnect)
            {
                // "The server MUST handle all outstanding requests" before closing: Transmit waits for them.
                Log("client sent NBD_CMD_DISC");
                return false;
            }

            if (!RequestStarted())
            {
                // The server closed this connection for a new client just as the request came.
                return false;
            }

            if (request.Command == NbdCommand.Write)
            {
                if (request.Length > (uint)_options.MaxPayload)
                {
                    // The payload is drained so the stream stays in step; the request fails.
                    _writer.Uncork();
                    _reader.Skip(request.Length);
                    holdingSlot = false;
                    Fail(request, NbdErrno.Overflow, $"write of {request.Length} bytes exceeds the maximum of {_options.MaxPayload}");
                    return true;
                }

                TakeShare(_writeBudget, NbdBufferPool.PayloadFootprint(request.Length));
                if (_reader.Buffered < request.Length)
                {
                    _writer.Uncork();
                }

                payload = WritePayload.Receive(_pool, (int)request.Length, _reader);
            }
            else if (request.Command == NbdCommand.Read)
            {
                // A read holds one piece at a time however long it is (ReadAsync).
                readShare = NbdBufferPool.Footprint((int)Math.Min(request.Length, NbdBufferPool.PieceSize));
                TakeShare(_readBudget, readShare);
            }

            holdingSlot = false;
            run = true;
            return true;
        }
        finally
        {
            if (holdingSlot)
            {
                _slots.Release();
            }
        }
    }

    /// <summary>Takes a request's share of a budget; when that must wait, the replies gathered so far go out first.</summary>
    private void TakeShare(ConnectionBudget budget, long bytes)
    {
        if (!budget.TryTake(bytes))
        {
            _writer.Uncork();
            budget.Take(bytes);
        }
    }
}
