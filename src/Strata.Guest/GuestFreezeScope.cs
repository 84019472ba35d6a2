namespace Strata.Guest;

/// <summary>
/// A guest held for a snapshot of its drives (<see cref="GuestChannel.EnterSnapshotAsync"/>): frozen
/// by the scope, frozen by an earlier begin_snapshot, or not frozen at all (then <see cref="Warning"/>
/// says why). Nothing else happens to the guest until <see cref="ExitAsync"/>, which thaws what the
/// scope froze; dispose exits too, so a failed snapshot thaws.
/// </summary>
public sealed class GuestFreezeScope : IAsyncDisposable
{
    private readonly GuestChannel _channel;
    private readonly bool _frozenHere;
    private bool _exited;

    internal GuestFreezeScope(GuestChannel channel, bool frozenHere, int frozenFileSystems, TimeSpan freezeTime, string? warning)
    {
        _channel = channel;
        _frozenHere = frozenHere;
        FrozenFileSystems = frozenFileSystems;
        FreezeTime = freezeTime;
        Warning = warning;
    }

    public GuestChannel Channel => _channel;

    /// <summary>True when the guest is frozen during the scope (by it or before it).</summary>
    public bool Frozen => _frozenHere || _channel.State == GuestFreezeState.Frozen;

    /// <summary>True when this scope froze the guest and will thaw it.</summary>
    public bool FrozenHere => _frozenHere;

    public int FrozenFileSystems { get; }

    /// <summary>How long the agent took to acknowledge the freeze (zero when the scope froze nothing).</summary>
    public TimeSpan FreezeTime { get; }

    /// <summary>Why the snapshot is crash-consistent only, or null.</summary>
    public string? Warning { get; }

    /// <summary>Thaws what the scope froze and lets the guest go; returns the thaw's problem, or null. A second call does nothing.</summary>
    public Task<string?> ExitAsync()
    {
        if (_exited)
        {
            return Task.FromResult<string?>(null);
        }

        _exited = true;
        return _channel.ExitSnapshotAsync(_frozenHere);
    }

    public async ValueTask DisposeAsync() => await ExitAsync();
}
