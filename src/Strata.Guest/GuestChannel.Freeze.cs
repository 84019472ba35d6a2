using System.Diagnostics;

namespace Strata.Guest;

/// <summary>
/// Freezing and thawing (qga/qapi-schema.json, guest-fsfreeze-*), with the rules that make a freeze
/// always end: freezes do not nest; the watch is armed before the freeze is sent; every failure after
/// the freeze was sent thaws; a lease thaws a begin_snapshot that nobody ended; an undelivered thaw is
/// retried on every reconnect and, if this process dies, by the watch.
/// </summary>
public sealed partial class GuestChannel
{
    /// <summary>
    /// begin_snapshot: freezes the guest's file systems and returns when the agent acknowledged, with
    /// the number frozen. The freeze lasts until <see cref="EndSnapshotAsync"/>, until
    /// <paramref name="owner"/> lets go (<see cref="ReleaseOwnerAsync"/>), or until the lease ends.
    /// Refused when the guest is already frozen: freezes do not nest.
    /// </summary>
    public async Task<GuestFreezeResult> BeginSnapshotAsync(object owner, TimeSpan? lease = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        var term = lease ?? _options.Lease;
        if (term <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(lease), "the lease must be positive");
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            var clock = Stopwatch.StartNew();
            int count = await FreezeCoreAsync(term, cancellationToken);
            _owner = owner;
            StartLease(term);
            return new GuestFreezeResult(Id, count, clock.Elapsed, term);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>end_snapshot: thaws a guest frozen by <see cref="BeginSnapshotAsync"/>; after an expired lease, says so and thaws nothing.</summary>
    public async Task<GuestThawResult> EndSnapshotAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            switch (_state)
            {
                case GuestFreezeState.Expired:
                    _state = GuestFreezeState.Thawed;
                    return new GuestThawResult(Id, 0, _options.Lease, Expired: true);
                case GuestFreezeState.Thawed:
                    throw new InvalidOperationException($"guest {Id} is not frozen (begin_snapshot first)");
            }

            var frozenFor = Stopwatch.GetElapsedTime(_frozenAt);
            int count = _frozenCount;
            if (await ThawCoreAsync("end_snapshot", cancellationToken) is { } problem)
            {
                throw new GuestAgentException(GuestAgentErrorKind.Disconnected, problem);
            }

            return new GuestThawResult(Id, count, frozenFor, Expired: false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Thaws the guest if <paramref name="owner"/> froze it and it is still frozen (its control client went away).</summary>
    public async Task ReleaseOwnerAsync(object owner, string reason)
    {
        await _gate.WaitAsync();
        try
        {
            if (_state == GuestFreezeState.Frozen && ReferenceEquals(_owner, owner))
            {
                await ThawCoreAsync(reason, CancellationToken.None);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Holds the guest for a snapshot of its drives: with <paramref name="freeze"/>, freezes it
    /// now (the scope thaws it when it ends); a guest frozen by begin_snapshot stays as it is, and
    /// its lease cannot end while the scope is held. A guest whose lease ran out is refused: whoever
    /// froze it believes the snapshot consistent and it would not be. When no agent can be reached
    /// the scope says the snapshot is crash-consistent only instead of failing.
    /// </summary>
    public async Task<GuestFreezeScope> EnterSnapshotAsync(bool freeze, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            switch (_state)
            {
                case GuestFreezeState.Expired:
                    throw new InvalidOperationException(
                        $"guest {Id}: its freeze ran past the {_options.Lease.TotalSeconds:0.###} s lease and Strata thawed it, so this snapshot would not be consistent; end_snapshot, then begin_snapshot again");
                case GuestFreezeState.Frozen:
                    return new GuestFreezeScope(this, frozenHere: false, _frozenCount, TimeSpan.Zero, null);
            }

            if (!freeze)
            {
                return new GuestFreezeScope(this, frozenHere: false, 0, TimeSpan.Zero, null);
            }

            var clock = Stopwatch.StartNew();
            try
            {
                int count = await FreezeCoreAsync(_options.Lease, cancellationToken);
                return new GuestFreezeScope(this, frozenHere: true, count, clock.Elapsed, null);
            }
            catch (GuestAgentException e) when (e.Kind == GuestAgentErrorKind.NoAgent)
            {
                return new GuestFreezeScope(this, frozenHere: false, 0, TimeSpan.Zero, $"guest {Id} has no agent answering ({e.Message}): the snapshot is crash-consistent only");
            }
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    /// <summary>Ends a scope of <see cref="EnterSnapshotAsync"/>: thaws what it froze; returns the thaw's problem, or null.</summary>
    internal async Task<string?> ExitSnapshotAsync(bool frozenHere)
    {
        try
        {
            if (!frozenHere)
            {
                return null;
            }

            return await ThawCoreAsync("the snapshot is done", CancellationToken.None) is { } problem ? problem
                : _thawedElsewhere ? $"guest {Id}: its file systems were thawed before the switch was done (by the freeze watch, past the lease and its grace, or in the guest): the snapshot is crash-consistent only"
                : null;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Under <c>_gate</c>: arms the watch (with the connection, and a deadline past the freeze call
    /// and <paramref name="lease"/>), freezes, checks the agent froze what was asked and that its
    /// status agrees, then tells the watch the lease. Any failure after the freeze was sent thaws,
    /// the agent's own refusal included (docs/guest.md, "When the agent fails the freeze").
    /// </summary>
    private async Task<int> FreezeCoreAsync(TimeSpan lease, CancellationToken cancellationToken)
    {
        if (_state == GuestFreezeState.Frozen)
        {
            throw new InvalidOperationException(
                $"guest {Id} is already frozen ({Stopwatch.GetElapsedTime(_frozenAt).TotalSeconds:0.###} s ago): freezes do not nest; end_snapshot first");
        }

        var client = await ConnectedAsync(cancellationToken);
        _watch?.Arm(SocketPath, client.Handle, _options.Agent.FreezeTimeout + _options.Agent.CallTimeout + lease + _options.WatchGrace);
        int count;
        try
        {
            try
            {
                count = Mountpoints.Count > 0
                    ? await CallAsync((c, ct) => c.FreezeListAsync(Mountpoints, ct), cancellationToken)
                    : await CallAsync((c, ct) => c.FreezeAsync(ct), cancellationToken);
            }
            catch (GuestAgentException e) when (e.Kind == GuestAgentErrorKind.AgentError)
            {
                // The agent answered and refused. qemu-ga thaws what it froze before it reports a
                // failed freeze, but another agent, or one that failed half-way, may not: thaw anyway.
                await ThawAfterRefusalAsync(cancellationToken);
                throw new GuestAgentException(e.Kind, $"guest {Id}: {e.Message}") { AgentErrorClass = e.AgentErrorClass };
            }

            if (Mountpoints.Count > 0 && count < Mountpoints.Count)
            {
                _state = GuestFreezeState.Frozen;
                await ThawCoreAsync("the agent froze fewer file systems than asked", CancellationToken.None);
                throw new GuestAgentException(GuestAgentErrorKind.AgentError,
                    $"guest {Id}: the agent froze {count} of the {Mountpoints.Count} file systems asked for ({string.Join(", ", Mountpoints)}); thawed again");
            }

            var status = await StatusOrNullAsync(cancellationToken);
            if (status == GuestFreezeStatus.Thawed)
            {
                throw new GuestAgentException(GuestAgentErrorKind.Protocol,
                    $"guest {Id}: the agent said it froze {count} file system{(count == 1 ? "" : "s")}, but its status says thawed");
            }
        }
        catch (Exception e) when (e is GuestAgentException { Kind: not GuestAgentErrorKind.AgentError } or OperationCanceledException)
        {
            // The freeze may have happened (or may happen yet, for a timeout): thaw, now or later.
            _state = GuestFreezeState.Frozen;
            string? problem = await ThawCoreAsync($"the freeze failed: {(e is GuestAgentException ? e.Message : "cancelled")}", CancellationToken.None);
            if (e is GuestAgentException g && problem is not null)
            {
                throw new GuestAgentException(g.Kind, $"{g.Message}; and thawing after it failed too: {problem}");
            }

            throw;
        }

        _state = GuestFreezeState.Frozen;
        _frozenCount = count;
        _frozenAt = Stopwatch.GetTimestamp();
        _watch?.Lease(SocketPath, lease + _options.WatchGrace);
        EventRaised?.Invoke(new GuestEvent(Id, GuestEventKind.Frozen, count));
        return count;
    }

    /// <summary>
    /// Under <c>_gate</c>, after the agent refused a freeze: a thaw for whatever it may have frozen.
    /// An agent that refuses the thaw too (qemu-ga -b blocks both) has nothing frozen by us; one that
    /// does not answer is thawed later, as after any failed thaw.
    /// </summary>
    private async Task ThawAfterRefusalAsync(CancellationToken cancellationToken)
    {
        try
        {
            int count = await CallAsync((c, ct) => c.ThawAsync(ct), cancellationToken);
            _watch?.Disarm(SocketPath);
            if (count > 0)
            {
                EventRaised?.Invoke(new GuestEvent(Id, GuestEventKind.Thawed, count, "the agent failed the freeze and was left with file systems frozen"));
            }
        }
        catch (GuestAgentException e) when (e.Kind == GuestAgentErrorKind.AgentError)
        {
            _watch?.Disarm(SocketPath);
        }
        catch (Exception e) when (e is GuestAgentException or OperationCanceledException)
        {
            _state = GuestFreezeState.Frozen;
            await ThawCoreAsync("the agent failed the freeze", CancellationToken.None);
        }
    }

    /// <summary>guest-fsfreeze-status, or null when the agent does not offer it (blocked, too old): the freeze's own count is then all there is.</summary>
    private async Task<GuestFreezeStatus?> StatusOrNullAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await CallAsync((c, ct) => c.StatusAsync(ct), cancellationToken);
        }
        catch (GuestAgentException e) when (e.Kind == GuestAgentErrorKind.AgentError)
        {
            return null;
        }
    }

    /// <summary>
    /// Under <c>_gate</c>: stops the lease and thaws. On the agent's acknowledgement the watch is
    /// disarmed and the guest is thawed; otherwise it stays marked for a thaw, which the health loop
    /// retries on every reconnect and the watch delivers if this process dies. Returns the problem, or null.
    /// </summary>
    private async Task<string?> ThawCoreAsync(string reason, CancellationToken cancellationToken)
    {
        if (_lease is not null)
        {
            await _lease.CancelAsync();
            _lease.Dispose();
            _lease = null;
        }

        _owner = null;
        try
        {
            int expected = _frozenCount;
            int count = await CallAsync((c, ct) => c.ThawAsync(ct), cancellationToken);
            _thawPending = false;
            _state = GuestFreezeState.Thawed;
            _frozenCount = 0;
            _watch?.Disarm(SocketPath);

            // Nothing left to thaw after a freeze of some: another hand thawed it first (the freeze
            // watch, when this process was stopped past the lease; or someone in the guest).
            _thawedElsewhere = expected > 0 && count == 0;
            EventRaised?.Invoke(new GuestEvent(Id, GuestEventKind.Thawed, count,
                _thawedElsewhere ? $"{reason}; the agent had nothing frozen any more (thawed by the freeze watch or in the guest)" : reason));
            return null;
        }
        catch (GuestAgentException e)
        {
            _thawPending = true;
            _state = GuestFreezeState.Thawed;
            return $"guest {Id}: thawing failed ({e.Message}); Strata retries it on every reconnect";
        }
    }

    /// <summary>Starts the lease of a begin_snapshot: at its end, if the same freeze still holds, the guest is thawed and marked expired.</summary>
    private void StartLease(TimeSpan term)
    {
        var lease = new CancellationTokenSource();
        _lease = lease;
        var token = lease.Token;
        _ = Task.Run(async () =>
        {
            try
            {
                await Task.Delay(term, token);
                await _gate.WaitAsync(token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                if (!token.IsCancellationRequested && _state == GuestFreezeState.Frozen)
                {
                    await ThawCoreAsync($"the lease of {term.TotalSeconds:0.###} s ended before end_snapshot", CancellationToken.None);
                    _state = GuestFreezeState.Expired;
                }
            }
            finally
            {
                _gate.Release();
            }
        }, CancellationToken.None);
    }
}
