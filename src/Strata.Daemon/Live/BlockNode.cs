using Strata.Block;

namespace Strata.Daemon.Live;

/// <summary>
/// A node added by blockdev-add (a backup's target), not a drive: a <c>file</c> node names a file
/// and opens nothing; a format node (qcow2, raw) is an open image with its backing chain.
/// </summary>
public sealed class BlockNode
{
    private int _users;

    internal BlockNode(string name, string driver, string fileName, IBlockNode? image, BlockNode? fileNode)
    {
        Name = name;
        Driver = driver;
        FileName = fileName;
        Image = image;
        FileNode = fileNode;
    }

    /// <summary>The node-name it was added under.</summary>
    public string Name { get; }

    /// <summary>"file", "qcow2" or "raw".</summary>
    public string Driver { get; }

    /// <summary>The image file, as a full path.</summary>
    public string FileName { get; }

    /// <summary>The open image of a format node; null for a file node.</summary>
    public IBlockNode? Image { get; }

    /// <summary>The file node a format node was opened on, when it named one.</summary>
    public BlockNode? FileNode { get; }

    /// <summary>Used by a job or by a format node above it: blockdev-del refuses it.</summary>
    public bool Busy => Volatile.Read(ref _users) > 0;

    /// <summary>Marks the node in use until the returned handle is disposed.</summary>
    public IDisposable Use()
    {
        Interlocked.Increment(ref _users);
        return new Release(this);
    }

    private sealed class Release(BlockNode node) : IDisposable
    {
        private BlockNode? _node = node;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _node, null) is { } n)
            {
                Interlocked.Decrement(ref n._users);
            }
        }
    }
}
