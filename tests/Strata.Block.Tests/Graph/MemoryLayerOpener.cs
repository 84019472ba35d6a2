using Strata.Block.Graph;

namespace Strata.Block.Tests.Graph;

/// <summary>
/// A <see cref="ILayerOpener"/> over <see cref="MemoryImage"/>s by name: what a drive asks of the
/// image drivers, with every open and every close recorded, so drive tests need no file and no format.
/// </summary>
public sealed class MemoryLayerOpener : ILayerOpener
{
    // Protects _images and the lists.
    private readonly Lock _lock = new();
    private readonly Dictionary<string, MemoryImage> _images = [];

    /// <summary>Every node opened, in order.</summary>
    public List<MemoryImageNode> Opened { get; } = [];

    /// <summary>The file of every node closed, in order.</summary>
    public List<string> Closed { get; } = [];

    /// <summary>When set, opening this file fails (a lock conflict, a missing image…).</summary>
    public string? FailOpening { get; set; }

    public MemoryImage this[string file] => _images[Path.GetFullPath(file)];

    /// <summary>Adds an image named <paramref name="file"/>, backed by <paramref name="backingFile"/> when given.</summary>
    public MemoryImage Add(string file, long size, string? backingFile = null)
    {
        var image = new MemoryImage(size, backingFile is null ? null : Path.GetFullPath(backingFile), backingFile is null ? null : "memory-image");
        lock (_lock)
        {
            _images.Add(Path.GetFullPath(file), image);
        }

        return image;
    }

    public async ValueTask<LayerChain> OpenChainAsync(string file, LayerOpenOptions options, CancellationToken cancellationToken = default)
    {
        // Opened the way an image opener hands a chain to a one-shot user (each edge owns the layer
        // below), then adopted, as the real opener does.
        var top = Open(file, options.ReadOnly);
        for (var layer = top; layer.Image.BackingFile is { } below;)
        {
            var next = Open(below, readOnly: true);
            layer.BackingEdge.Attach(next, owns: true);
            layer = next;
        }

        await Task.Yield();
        return LayerChain.Adopt(top);
    }

    public ValueTask<IBlockNode> OpenLayerAsync(string file, LayerOpenOptions options, CancellationToken cancellationToken = default)
        => ValueTask.FromResult<IBlockNode>(Open(file, options.ReadOnly));

    public ValueTask CreateOverlayAsync(string file, IBlockNode backing, CancellationToken cancellationToken = default)
    {
        if (Exists(file))
        {
            throw BlockException.Invalid($"Could not create '{file}': it already exists");
        }

        Add(file, backing.Size, backing.FileName);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IBlockNode> ReopenAsync(IBlockNode layer, NodePermissions current, NodePermissions wanted, LayerOpenOptions options,
        CancellationToken cancellationToken = default)
    {
        try
        {
            layer.SetPermissions(wanted, PermissionCheck.Conflicts);
            var reopened = Open(layer.FileName!, options.ReadOnly);
            reopened.SetPermissions(wanted, PermissionCheck.Skip);
            return ValueTask.FromResult<IBlockNode>(reopened);
        }
        catch
        {
            layer.SetPermissions(current, PermissionCheck.Skip);
            throw;
        }
    }

    public string FullName(string file) => Path.GetFullPath(file);

    public bool Exists(string file)
    {
        lock (_lock)
        {
            return _images.ContainsKey(Path.GetFullPath(file));
        }
    }

    public void Delete(string file)
    {
        lock (_lock)
        {
            _images.Remove(Path.GetFullPath(file));
        }
    }

    public string ResolveBackingFile(string overlayFile, string backingName)
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(overlayFile))!, backingName));

    private MemoryImageNode Open(string file, bool readOnly)
    {
        string full = Path.GetFullPath(file);
        if (full == (FailOpening is { } failing ? Path.GetFullPath(failing) : null))
        {
            throw BlockException.Invalid($"Could not open '{file}': refused by the test");
        }

        lock (_lock)
        {
            if (!_images.TryGetValue(full, out var image))
            {
                throw BlockException.Invalid($"Could not open '{file}': no such image");
            }

            var node = new MemoryImageNode(image, full, readOnly, Closed);
            Opened.Add(node);
            return node;
        }
    }
}
