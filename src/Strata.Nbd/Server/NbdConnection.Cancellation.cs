namespace Strata.Nbd.Server;

/// <summary>
/// The token every request of this connection carries to the gate and the nodes: cancelled when the
/// connection is gone (the client closed it, it was evicted, or the server's stop gave up waiting and
/// closed it). A request held at a drained gate then stops waiting, and a driver that honours the
/// token stops working for a client that can no longer read the answer. A graceful end (NBD_CMD_DISC,
/// a server stop within its grace period) cancels nothing: requests in flight finish and answer.
/// </summary>
public sealed partial class NbdConnection
{
    // Never disposed: it has no timer, and a request abandoned at close may still read its token.
    private readonly CancellationTokenSource _requests = new();

    private CancellationToken RequestsCancelled => _requests.Token;

    private void CancelRequests()
    {
        try
        {
            _requests.Cancel();
        }
        catch (AggregateException e)
        {
            // A callback registered by a node threw; the connection is going away regardless.
            Log($"cancelling requests in flight: {e.InnerException?.Message}");
        }
    }

    /// <summary>
    /// Waits until every request in flight has given its slot back, or the connection is gone: then
    /// no answer can reach the client, and a request hung in a node must not hold the connection open.
    /// </summary>
    private void WaitForRequestsInFlight()
    {
        try
        {
            for (int i = 0; i < _options.MaxRequestsInFlight; i++)
            {
                _slots.Wait(RequestsCancelled);
            }
        }
        catch (OperationCanceledException)
        {
            Log("connection closed with requests in flight: not waiting for them");
        }
    }
}
