using System.Runtime.ExceptionServices;

namespace Strata.Block.Graph;

/// <summary>
/// The layers one owner opened and must close: a drive's chain (its top, every backing layer, a
/// merge's base), or a chain an opener hands to a one-shot user. Closing the chain closes each layer
/// once, in the order they sit in it (top first), so a format layer writes back its metadata before
/// the layer it reads from goes.
/// </summary>
/// <remarks>
/// A layer is in at most one chain. Graph operations move layers in and out under the drive's
/// drain: a snapshot puts its overlay on top (<see cref="AddOnTop"/>), a reopen swaps one instance for
/// another (<see cref="Replace"/>), a merge closes the layers it merged (<see cref="CloseAsync"/>).
/// </remarks>
public sealed class LayerChain : IAsyncDisposable
{
    // Protects _layers; closing runs outside it.
    private readonly Lock _lock = new();

    // Top first.
    private readonly List<IBlockNode> _layers = [];

    /// <summary>An empty chain: layers come in through <see cref="AddOnTop"/> and <see cref="AddBelow"/>.</summary>
    public LayerChain()
    {
    }

    /// <summary>The layers owned, top first.</summary>
    public IReadOnlyList<IBlockNode> Layers
    {
        get
        {
            lock (_lock)
            {
                return [.. _layers];
            }
        }
    }

    /// <summary>
    /// Takes over a chain whose edges own their nodes (what an opener gives a one-shot user): every
    /// owning edge from <paramref name="top"/> down gives its node to the returned chain, which closes
    /// them all; the edges keep pointing as they did.
    /// </summary>
    public static LayerChain Adopt(IBlockNode top)
    {
        ArgumentNullException.ThrowIfNull(top);
        var chain = new LayerChain();
        chain._layers.Add(top);
        for (var node = top; node is IBackedLayer layer && layer.BackingEdge.Release() is { } below; node = below)
        {
            chain._layers.Add(below);
        }

        return chain;
    }

    /// <summary>Puts a new layer above every other (a snapshot's overlay).</summary>
    public void AddOnTop(IBlockNode layer) => Insert(0, layer);

    /// <summary>Puts a layer below every other.</summary>
    public void AddBelow(IBlockNode layer) => Insert(null, layer);

    /// <summary>True when the chain owns <paramref name="layer"/>.</summary>
    public bool Owns(IBlockNode layer)
    {
        lock (_lock)
        {
            return _layers.Exists(l => ReferenceEquals(l, layer));
        }
    }

    /// <summary>Puts <paramref name="replacement"/> where <paramref name="layer"/> was; the caller now holds <paramref name="layer"/>.</summary>
    public void Replace(IBlockNode layer, IBlockNode replacement)
    {
        ArgumentNullException.ThrowIfNull(replacement);
        lock (_lock)
        {
            int at = IndexOf(layer);
            _layers[at] = replacement;
        }
    }

    /// <summary>Takes <paramref name="layer"/> out without closing it: the caller now holds it.</summary>
    public void Remove(IBlockNode layer)
    {
        lock (_lock)
        {
            _layers.RemoveAt(IndexOf(layer));
        }
    }

    /// <summary>Takes <paramref name="layers"/> out of the chain and closes them, in the order given; every one is closed even if one fails.</summary>
    public async ValueTask CloseAsync(IEnumerable<IBlockNode> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var closing = layers.ToList();
        foreach (var layer in closing)
        {
            Remove(layer);
        }

        await CloseEachAsync(closing);
    }

    /// <summary>Closes every layer, top first; every one is closed even if one fails (the first failure is thrown).</summary>
    public async ValueTask DisposeAsync()
    {
        List<IBlockNode> closing;
        lock (_lock)
        {
            closing = [.. _layers];
            _layers.Clear();
        }

        await CloseEachAsync(closing);
    }

    private static async ValueTask CloseEachAsync(List<IBlockNode> layers)
    {
        Exception? first = null;
        foreach (var layer in layers)
        {
            try
            {
                await layer.DisposeAsync();
            }
            catch (Exception e) when (e is IOException or BlockException or ObjectDisposedException)
            {
                first ??= e;
            }
        }

        if (first is not null)
        {
            ExceptionDispatchInfo.Throw(first);
        }
    }

    private void Insert(int? index, IBlockNode layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        lock (_lock)
        {
            if (_layers.Exists(l => ReferenceEquals(l, layer)))
            {
                throw new InvalidOperationException("the layer is already in this chain");
            }

            _layers.Insert(index ?? _layers.Count, layer);
        }
    }

    private int IndexOf(IBlockNode layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        int at = _layers.FindIndex(l => ReferenceEquals(l, layer));
        return at >= 0 ? at : throw new InvalidOperationException("the layer is not in this chain");
    }
}
