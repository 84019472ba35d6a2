using System.Runtime.ExceptionServices;

namespace Strata.Block;

/// <summary>
/// The error policy of guest requests (QEMU's -drive werror=/rerror=, block/block-backend.c
/// blk_get_error_action and blk_error_action): when an admitted request fails in the layers with a
/// failure of the storage (<see cref="BlockError.Io"/>, <see cref="BlockError.NoSpace"/>,
/// <see cref="BlockError.TimedOut"/>), the policy of its side either reports it (the request fails,
/// as with no policy) or stops: the gate holds itself, as a drain does, the request leaves the count
/// of requests in flight and waits unanswered, and when the hold ends (<see cref="ContinueAfterError"/>)
/// it runs again, and may stop the gate again. Either way <see cref="IoError"/> tells the owner.
/// </summary>
/// <remarks>
/// Refusals are answers, not failures of the storage, and running them again could not change them:
/// a bad argument, a read-only disk, an unsupported request, a corrupt image, a lock: they always
/// fail at once. Block status is a query, not guest I/O, and is always reported too. Nothing here
/// runs for a request that succeeds: the policy is read only in the failure's catch.
/// </remarks>
public sealed partial class RequestGate
{
    // Under _lock: whether a stop holds the gate (one hold, however many requests failed), the
    // status the first stop set, and whether held requests fail instead of running again (closing).
    private bool _errorHeld;
    private IoStatus _ioStatus;
    private bool _failHeld;

    // Under _lock: failed requests waiting out a stop to run again.
    private int _heldRequests;

    /// <summary>What a failed read does; <see cref="IoErrorPolicy.Report"/> unless set.</summary>
    public IoErrorPolicy ReadErrorPolicy { get; set; }

    /// <summary>What a failed write, write-zeroes, discard or flush does; <see cref="IoErrorPolicy.Report"/> unless set.</summary>
    public IoErrorPolicy WriteErrorPolicy { get; set; }

    /// <summary>
    /// Raised for every failure the policy acted on, on the failing request's thread, after the gate
    /// is held (when it stopped) and before the request leaves it. A handler must not wait for the gate.
    /// </summary>
    public event Action<GuestIoError>? IoError;

    /// <summary>Ok, or what the first failure that stopped the gate was, until <see cref="ContinueAfterError"/>.</summary>
    public IoStatus IoStatus
    {
        get
        {
            lock (_lock)
            {
                return _ioStatus;
            }
        }
    }

    /// <summary>Failed requests held unanswered, waiting for <see cref="ContinueAfterError"/>; a request whose client went away no longer counts.</summary>
    public int HeldRequests
    {
        get
        {
            lock (_lock)
            {
                return _heldRequests;
            }
        }
    }

    /// <summary>True while a failure holds the gate (requests wait, the failed ones unanswered).</summary>
    public bool IsStoppedByError
    {
        get
        {
            lock (_lock)
            {
                return _errorHeld;
            }
        }
    }

    /// <summary>
    /// Clears the I/O status and ends the hold of a stop: the held requests run again (QEMU's cont
    /// resets every drive's status). False when no failure held the gate.
    /// </summary>
    public bool ContinueAfterError()
    {
        lock (_lock)
        {
            _ioStatus = IoStatus.Ok;
            if (!_errorHeld)
            {
                return false;
            }

            _errorHeld = false;
        }

        Release();
        return true;
    }

    /// <summary>
    /// For good (the drive is closing): the requests a stop holds fail with their own error instead
    /// of running again, and later failures are reported whatever the policy, so nothing waits for a
    /// resume that will not come.
    /// </summary>
    public void FailHeldRequests()
    {
        bool release;
        lock (_lock)
        {
            _failHeld = true;
            release = _errorHeld;
            _errorHeld = false;
        }

        if (release)
        {
            Release();
        }
    }

    /// <summary>
    /// Applies the policy to <paramref name="failure"/> of an admitted request, before it leaves the
    /// gate: true when the request is to be held (the gate is held now), false when it fails.
    /// </summary>
    /// <remarks>
    /// Called as the failure's catch filter, so the hold is taken while the request still counts in
    /// flight (before its finally leaves the gate), and a failure it does not hold propagates untouched.
    /// </remarks>
    private bool HoldsAfter(BlockException failure, bool write, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested || failure.Error is not (BlockError.Io or BlockError.NoSpace or BlockError.TimedOut))
        {
            return false;
        }

        bool noSpace = failure.Error == BlockError.NoSpace;
        var policy = write ? WriteErrorPolicy : ReadErrorPolicy;
        bool stop = policy.Stops(noSpace);
        lock (_lock)
        {
            if (_failHeld)
            {
                stop = false;
            }
            else if (stop)
            {
                // The first failure names the status; an event already sent is never contradicted by it.
                if (_ioStatus == IoStatus.Ok)
                {
                    _ioStatus = noSpace ? IoStatus.NoSpace : IoStatus.Failed;
                }

                if (!_errorHeld)
                {
                    _errorHeld = true;
                    if (_holds++ == 0)
                    {
                        _resumed = NewSignal(completed: false);
                    }
                }
            }
        }

        IoError?.Invoke(new GuestIoError(write, stop, noSpace, failure.Message));
        return stop;
    }

    /// <summary>
    /// A held request, out of the gate: waits until nothing holds the gate, then returns to run it
    /// again, or throws its <paramref name="failure"/> (<see cref="FailHeldRequests"/>). A cancelled
    /// request (its client went away) stops waiting and is dropped.
    /// </summary>
    private async ValueTask RetryAfterHoldAsync(BlockException? failure, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _heldRequests++;
        }

        try
        {
            await WaitOutHoldAsync(failure, cancellationToken);
        }
        finally
        {
            lock (_lock)
            {
                _heldRequests--;
            }
        }
    }

    private async ValueTask WaitOutHoldAsync(BlockException? failure, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task resumed;
            lock (_lock)
            {
                if (_failHeld)
                {
                    ExceptionDispatchInfo.Throw(failure!);
                }

                if (_holds == 0)
                {
                    return;
                }

                resumed = _resumed.Task;
            }

            await resumed.WaitAsync(cancellationToken);
        }
    }
}
