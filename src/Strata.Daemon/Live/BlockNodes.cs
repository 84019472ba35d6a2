using Strata.Block;
using Strata.Formats;

namespace Strata.Daemon.Live;

/// <summary>
/// The nodes added by blockdev-add that belong to no drive (backup targets), by node-name: the
/// subset of QEMU's named nodes a push backup needs. The daemon closes those still open when it stops.
/// </summary>
public sealed class BlockNodes
{
    /// <summary>The drivers blockdev-add takes here.</summary>
    public static readonly IReadOnlyList<string> Drivers = ["file", "qcow2", "raw"];

    // Protects _nodes and each node's file-node use.
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (BlockNode Node, IDisposable? FileUse)> _nodes = [];

    public BlockNode? Find(string name)
    {
        lock (_lock)
        {
            return _nodes.TryGetValue(name, out var entry) ? entry.Node : null;
        }
    }

    /// <summary>A <c>file</c> node: remembers the file; nothing is opened until a format node uses it.</summary>
    public void AddFile(string name, string fileName)
    {
        lock (_lock)
        {
            ThrowIfTaken(name);
            _nodes.Add(name, (new BlockNode(name, "file", ImageOpener.FullName(fileName), null, null), null));
        }
    }

    /// <summary>
    /// A qcow2 or raw node over a file (given by name, or a <c>file</c> node): the image is opened
    /// read-write with its backing chain, and its file node is in use until it is deleted.
    /// </summary>
    public async Task AddImageAsync(string name, string format, string? fileName, string? fileNode, CancellationToken cancellationToken)
    {
        BlockNode? file = null;
        lock (_lock)
        {
            ThrowIfTaken(name);
            if (fileNode is not null)
            {
                file = Find(fileNode) ?? throw BlockException.Invalid($"Cannot find node '{fileNode}'");
                if (file.Driver != "file")
                {
                    throw BlockException.Invalid($"Node '{fileNode}' is a {file.Driver} node, not a file node");
                }
            }
        }

        string path = file?.FileName ?? ImageOpener.FullName(fileName ?? throw BlockException.Invalid("Parameter 'file' is missing"));
        var image = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Format = format }, cancellationToken);
        lock (_lock)
        {
            if (!_nodes.ContainsKey(name) && (file is null || _nodes.ContainsKey(file.Name)))
            {
                _nodes.Add(name, (new BlockNode(name, format, path, image, file), file?.Use()));
                return;
            }
        }

        // Another command took the name, or deleted the file node, meanwhile.
        await image.DisposeAsync();
        throw BlockException.Invalid($"node '{name}' could not be added: the table changed meanwhile");
    }

    /// <summary>blockdev-del: closes and forgets a node nothing uses.</summary>
    public async Task RemoveAsync(string name)
    {
        (BlockNode Node, IDisposable? FileUse) entry;
        lock (_lock)
        {
            if (!_nodes.TryGetValue(name, out entry))
            {
                throw BlockException.Invalid($"Failed to find node with node-name='{name}'");
            }

            if (entry.Node.Busy)
            {
                throw BlockException.Invalid($"Node '{name}' is busy: it is in use");
            }

            _nodes.Remove(name);
        }

        entry.FileUse?.Dispose();
        if (entry.Node.Image is { } image)
        {
            await image.DisposeAsync();
        }
    }

    /// <summary>Closes every open node (the daemon stops); returns one line per node that failed to close.</summary>
    public async Task<IReadOnlyList<string>> CloseAllAsync()
    {
        List<BlockNode> all;
        lock (_lock)
        {
            all = [.. _nodes.Values.Select(e => e.Node)];
            _nodes.Clear();
        }

        var problems = new List<string>();
        foreach (var node in all.Where(n => n.Image is not null))
        {
            try
            {
                await node.Image!.DisposeAsync();
            }
            catch (Exception e) when (e is IOException or BlockException)
            {
                problems.Add($"node {node.Name}: closing failed: {e.Message}");
            }
        }

        return problems;
    }

    private void ThrowIfTaken(string name)
    {
        if (_nodes.ContainsKey(name))
        {
            throw BlockException.Invalid($"Duplicate nodes with node-name='{name}'");
        }
    }
}
