namespace Strata.Block.Graph;

/// <summary>
/// A point-in-time view of a frozen layer of a drive (a backing image a snapshot left behind): its
/// own read-only <see cref="RequestGate"/> over a <see cref="ReadOnlyLayerFilter"/>, reading through
/// the layer's backing chain. Made by <see cref="Drive.OpenFrozenView"/>.
/// </summary>
/// <remarks>
/// Invariant: while the view is open, no graph operation of its drive changes what it reads: a merge
/// whose base is the layer or below it, and a reopen of the layer or of a layer below it, are refused
/// (<see cref="Drive.OpenFrozenView"/>), and a snapshot or a merge above the layer never touches it.
/// Dispose it only when nothing reads through <see cref="Gate"/> any more (an export's last client
/// has gone): from then on the drive may merge the layer away.
/// </remarks>
public sealed class FrozenLayerView : IDisposable
{
    private readonly Action<FrozenLayerView> _release;
    private int _disposed;

    internal FrozenLayerView(IBlockNode layer, string user, Action<FrozenLayerView> release)
    {
        Layer = layer;
        User = user;
        _release = release;
        Gate = new RequestGate(new ReadOnlyLayerFilter(layer));
    }

    /// <summary>The frozen layer the view reads.</summary>
    public IBlockNode Layer { get; }

    /// <summary>Who holds the view, for the refusals it causes ("export 'backup0'").</summary>
    public string User { get; }

    /// <summary>The view's own gate: read-only, its root a filter over <see cref="Layer"/>.</summary>
    public RequestGate Gate { get; }

    /// <summary>Gives the layer back to the drive's graph operations.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _release(this);
        }
    }
}
