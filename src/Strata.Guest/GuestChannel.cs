using System.Diagnostics;

namespace Strata.Guest;

/// <summary>
/// A named guest: the unix socket of its agent (the host end of its virtio-serial port, where QEMU's
/// chardev listens) and the drives it writes. The channel connects as a client, keeps the connection
/// (pinging it every <see cref="GuestChannelOptions.HealthInterval"/>) and reconnects with a bounded
/// backoff when it breaks, as it does while the VM restarts and its socket file comes back.
/// <para>
/// Invariant: while the guest is frozen, the freeze watch is armed for this socket and the lease
/// timer runs; the guest leaves <see cref="GuestFreezeState.Frozen"/> only through a thaw the agent
/// acknowledged, or by being marked for a thaw that the health loop retries on every reconnect. The
/// state, the connection and every call go through <c>_gate</c>, one at a time.
/// </para>
/// </summary>
public sealed partial class GuestChannel : IAsyncDisposable
{
    private readonly GuestChannelOptions _options;
    private readonly IFreezeWatch? _watch;
    private readonly CancellationTokenSource _stopping = new();

    // Protects the connection and the freeze state below: held for a whole call or a whole freeze scope.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private GuestAgentClient? _client;
    private int _responding;
    private volatile GuestFreezeState _state;
    private object? _owner;
    private int _frozenCount;
    private long _frozenAt;
    private bool _thawPending;
    private bool _thawedElsewhere;
    private CancellationTokenSource? _lease;
    private Task? _health;

    public GuestChannel(string id, string socketPath, IReadOnlyList<string> drives, GuestChannelOptions? options = null, IFreezeWatch? watch = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        ArgumentNullException.ThrowIfNull(drives);
        Id = id;
        SocketPath = Path.GetFullPath(socketPath);
        Drives = drives;
        _options = options ?? new GuestChannelOptions();
        _watch = watch;
    }

    public string Id { get; }

    public string SocketPath { get; }

    /// <summary>The ids of the drives this guest writes: a consistent snapshot freezes it and switches them all.</summary>
    public IReadOnlyList<string> Drives { get; }

    /// <summary>
    /// The mount points a freeze names (guest-fsfreeze-freeze-list); empty: every file system the
    /// agent can freeze (guest-fsfreeze-freeze). An agent that freezes fewer of them fails the freeze.
    /// </summary>
    public IReadOnlyList<string> Mountpoints { get; init; } = [];

    public TimeSpan DefaultLease => _options.Lease;

    /// <summary>Raised from the channel's own tasks; handlers must not block.</summary>
    public event Action<GuestEvent>? EventRaised;

    /// <summary>True while the agent answers (the last sync or ping succeeded).</summary>
    public bool IsResponding => Volatile.Read(ref _responding) == 1;

    public GuestFreezeState State => _state;

    /// <summary>The agent's version, from guest-info at connect; null until an agent answered.</summary>
    public string? AgentVersion { get; private set; }

    /// <summary>The number of file systems frozen, while <see cref="State"/> is frozen.</summary>
    public int FrozenFileSystems => Volatile.Read(ref _frozenCount);

    /// <summary>Starts the connect-and-ping loop in the background.</summary>
    public void Start() => _health ??= Task.Run(() => HealthLoopAsync(_stopping.Token));

    /// <summary>guest-ping through the channel; connects first when needed.</summary>
    public async Task<TimeSpan> PingAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var clock = Stopwatch.StartNew();
            await CallAsync((c, ct) => c.PingAsync(ct), cancellationToken);
            return clock.Elapsed;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>guest-info through the channel.</summary>
    public async Task<GuestAgentInfo> InfoAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return await CallAsync((c, ct) => c.InfoAsync(ct), cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Stops the loop and leaves the guest thawed: a guest still frozen (or marked for a thaw) is
    /// thawed now; if the agent does not acknowledge, the freeze watch stays armed and thaws it once
    /// this process is gone. Returns what could not be done, or null.
    /// </summary>
    public async Task<string?> StopAsync()
    {
        await _stopping.CancelAsync();
        if (_health is not null)
        {
            await _health;
        }

        await _gate.WaitAsync();
        try
        {
            string? problem = null;
            if (_state == GuestFreezeState.Frozen || _thawPending)
            {
                problem = await ThawCoreAsync("the daemon is stopping", CancellationToken.None);
            }

            if (_client is not null)
            {
                await _client.DisposeAsync();
                _client = null;
            }

            return problem;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
    }

    /// <summary>
    /// Runs a call on the connection, connecting first when there is none; under <c>_gate</c>. A
    /// broken connection is dropped, so the next call (or the health loop) connects anew.
    /// </summary>
    private async Task<T> CallAsync<T>(Func<GuestAgentClient, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        var client = await ConnectedAsync(cancellationToken);
        try
        {
            var result = await call(client, cancellationToken);
            SetResponding(true, null);
            return result;
        }
        catch (GuestAgentException e) when (e.Kind != GuestAgentErrorKind.AgentError)
        {
            if (client.IsClosed)
            {
                await DropAsync();
            }

            SetResponding(false, e.Message);
            throw;
        }
    }

    private Task<int> CallAsync(Func<GuestAgentClient, CancellationToken, Task> call, CancellationToken cancellationToken) =>
        CallAsync(async (c, ct) =>
        {
            await call(c, ct);
            return 0;
        }, cancellationToken);

    private async Task<GuestAgentClient> ConnectedAsync(CancellationToken cancellationToken)
    {
        if (_client is { IsClosed: false } client)
        {
            return client;
        }

        await DropAsync();
        try
        {
            _client = await GuestAgentClient.ConnectAsync(SocketPath, _options.Agent, cancellationToken);
        }
        catch (GuestAgentException e)
        {
            SetResponding(false, e.Message);
            throw new GuestAgentException(e.Kind, $"guest {Id}: {e.Message}");
        }

        return _client;
    }

    private async Task DropAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
            _client = null;
        }
    }

    /// <summary>Records whether the agent answers and raises Connected or Lost on a change.</summary>
    private void SetResponding(bool responding, string? reason)
    {
        if (Interlocked.Exchange(ref _responding, responding ? 1 : 0) != (responding ? 1 : 0))
        {
            EventRaised?.Invoke(new GuestEvent(Id, responding ? GuestEventKind.Connected : GuestEventKind.Lost, Reason: reason));
        }
    }

    /// <summary>
    /// Connects (backing off from <see cref="GuestChannelOptions.MinReconnectDelay"/> up to
    /// <see cref="GuestChannelOptions.MaxReconnectDelay"/> while nothing answers), learns the agent's
    /// version, then pings it every <see cref="GuestChannelOptions.HealthInterval"/>; a thaw that could
    /// not be delivered is retried first thing on every attempt.
    /// </summary>
    private async Task HealthLoopAsync(CancellationToken stop)
    {
        var delay = _options.MinReconnectDelay;
        while (!stop.IsCancellationRequested)
        {
            bool ok;
            try
            {
                await _gate.WaitAsync(stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                if (_thawPending)
                {
                    await ThawCoreAsync("a thaw that had failed, retried", stop);
                }

                if (AgentVersion is null || _client is null)
                {
                    AgentVersion = (await CallAsync((c, ct) => c.InfoAsync(ct), stop)).Version;
                }
                else
                {
                    await CallAsync((c, ct) => c.PingAsync(ct), stop);
                }

                ok = true;
            }
            catch (GuestAgentException)
            {
                ok = false;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            finally
            {
                _gate.Release();
            }

            delay = ok ? _options.MinReconnectDelay : TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxReconnectDelay.Ticks));
            try
            {
                await Task.Delay(ok ? _options.HealthInterval : delay, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
