using System.Diagnostics;
using Strata.Block;
using Strata.Daemon.Control;

namespace Strata.Daemon;

/// <summary>
/// The drives' error policies at the daemon (docs/serve.md, "When the disk fails"): each failure a
/// policy acted on becomes a BLOCK_IO_ERROR event (qapi/block-core.json); the first that stops a
/// drive stops the whole daemon as QEMU's vm_stop(RUN_STATE_IO_ERROR) stops the VM: a STOP event,
/// query-status "io-error", and every drive's guest I/O held, until <c>cont</c>.
/// </summary>
public sealed partial class StorageDaemon
{
    /// <summary>
    /// Report events of one drive and side are sent at most this often; the others are only counted
    /// in the log. A guest that retries a failing request at once would otherwise flood every control
    /// client, and a client that cannot keep up with its events is disconnected (QmpOutbox). Stop
    /// events are never held back: each stops the daemon, so they cannot come faster than cont.
    /// </summary>
    private static readonly TimeSpan ReportEventInterval = TimeSpan.FromSeconds(1);

    // Under _lock: whether a failure stopped the daemon (until cont); when each drive and side last
    // sent a report event, and how many it held back since.
    private bool _stoppedByError;
    private readonly Dictionary<(string Drive, bool Write), (long At, int HeldBack)> _reports = [];

    /// <summary>QEMU's run state as query-status names it: "running", "paused" (stop, -S) or "io-error".</summary>
    public string RunStatus
    {
        get
        {
            lock (_lock)
            {
                return _stoppedByError ? "io-error" : _pauses is not null ? "paused" : "running";
            }
        }
    }

    /// <summary>Applies a drive's --drive werror=/rerror= to its gate and listens to its failures.</summary>
    private void WatchErrors(Drive drive, DriveSpec spec)
    {
        drive.Gate.WriteErrorPolicy = spec.WriteErrorPolicy;
        drive.Gate.ReadErrorPolicy = spec.ReadErrorPolicy;
        drive.Gate.IoError += error => OnIoError(drive, error);
    }

    /// <summary>Runs on the failing request's thread with its gate held (when stopped): decides, emits, and leaves the pausing to the pool.</summary>
    private void OnIoError(Drive drive, GuestIoError error)
    {
        string side = error.Write ? "write" : "read";
        bool firstStop = false;
        int heldBack = 0;
        lock (_lock)
        {
            if (error.Stopped)
            {
                firstStop = !_stoppedByError && _stop is null;
                _stoppedByError |= firstStop;
            }
            else
            {
                long now = Stopwatch.GetTimestamp();
                var key = (drive.Id, error.Write);
                if (_reports.TryGetValue(key, out var last) && Stopwatch.GetElapsedTime(last.At, now) < ReportEventInterval)
                {
                    _reports[key] = (last.At, last.HeldBack + 1);
                    return;
                }

                heldBack = last.HeldBack;
                _reports[key] = (now, 0);
            }
        }

        Log($"drive {drive.Id}: {side} failed, {(error.Stopped ? "held until 'cont'" : "reported to the guest")}: {error.Message}"
            + (heldBack > 0 ? $" ({heldBack} more {side} failures reported since the last event)" : ""));
        Emit(new QmpEvent("BLOCK_IO_ERROR", w =>
        {
            w.WriteStartObject();
            w.WriteString("device", drive.Id);
            w.WriteString("node-name", drive.Id);
            w.WriteString("operation", side);
            w.WriteString("action", error.Stopped ? "stop" : "report");
            w.WriteBoolean("nospace", error.NoSpace);
            w.WriteString("reason", error.Message);
            w.WriteEndObject();
        }));
        if (firstStop)
        {
            // As QEMU, BLOCK_IO_ERROR comes first and STOP after it. The failing drive is already held
            // by its gate; the others are drained on the pool (a drain waits for this very request).
            Emit(new QmpEvent("STOP", w =>
            {
                w.WriteStartObject();
                w.WriteEndObject();
            }));
            _ = Task.Run(PauseAfterErrorAsync);
        }
    }

    /// <summary>Holds every drive's guest I/O after a failure stopped one; a drain that cannot finish is logged, the failing drive stays held by its gate.</summary>
    private async Task PauseAfterErrorAsync()
    {
        try
        {
            await PauseAsync();
        }
        catch (BlockException e)
        {
            Log($"after an I/O error, holding the other drives failed: {e.Message}");
        }
    }

    /// <summary>For cont: clears the stop by error and every drive's I/O status; the requests held by a failure run again. True when a failure had stopped the daemon.</summary>
    private bool ContinueAfterErrors()
    {
        bool wasStopped;
        lock (_lock)
        {
            wasStopped = _stoppedByError;
            _stoppedByError = false;
        }

        foreach (var drive in _drives)
        {
            drive.Gate.ContinueAfterError();
        }

        return wasStopped;
    }
}
