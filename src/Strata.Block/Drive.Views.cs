using Strata.Block.Graph;

namespace Strata.Block;

/// <summary>Point-in-time views of a drive's frozen layers (a pull backup's export reads one).</summary>
public sealed partial class Drive
{
    // Protects _views; views come and go from any thread, graph operations read them under the caller's graph lock.
    private readonly Lock _viewsLock = new();
    private readonly List<FrozenLayerView> _views = [];

    /// <summary>
    /// Opens a read-only view of <paramref name="layer"/>, a layer below the drive's top: nothing
    /// writes it any more (a snapshot froze it, docs/live.md), so what it reads is the disk at the
    /// moment of that snapshot. The drive's top is refused: the guest writes it, so it is no point in
    /// time. Until the view is disposed, merges and reopens that would change the layer are refused
    /// with <paramref name="user"/> named in the error.
    /// </summary>
    public FrozenLayerView OpenFrozenView(IBlockNode layer, string user)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentException.ThrowIfNullOrEmpty(user);
        if (!_chain.Owns(layer) || Top.DepthOf(layer) < 0)
        {
            throw BlockException.Invalid($"'{layer.FileName}' is not a layer of drive '{Id}'");
        }

        if (ReferenceEquals(layer, Top))
        {
            throw BlockException.Invalid($"'{layer.FileName ?? Id}' is the active image of drive '{Id}': the guest writes it, so it is no point in time; "
                + "take a snapshot and use the image it freezes");
        }

        var view = new FrozenLayerView(layer, user, ReleaseView);
        lock (_viewsLock)
        {
            _views.Add(view);
        }

        return view;
    }

    /// <summary>Throws when an open view reads <paramref name="lowest"/> (it is a viewed layer or below one) and <paramref name="operation"/> would change it.</summary>
    private void ThrowIfViewed(IBlockNode lowest, string operation)
    {
        FrozenLayerView? view;
        lock (_viewsLock)
        {
            view = _views.Find(v => v.Layer.DepthOf(lowest) >= 0);
        }

        if (view is not null)
        {
            throw BlockException.Invalid($"'{view.Layer.FileName}' of drive '{Id}' is in use by {view.User} as a point-in-time view: "
                + $"{operation} is refused until that ends");
        }
    }

    private void ReleaseView(FrozenLayerView view)
    {
        lock (_viewsLock)
        {
            _views.Remove(view);
        }
    }
}
