namespace Strata.Block;

/// <summary>
/// Walks a chain of layers through their backing links: the one place that follows
/// <see cref="IBlockNode.Backing"/> from a top layer down (openers bound a chain's length, so every
/// walk ends).
/// </summary>
public static class BlockChain
{
    /// <summary>Every layer from <paramref name="top"/> down to the last backing node, top first.</summary>
    public static IEnumerable<IBlockNode> Layers(this IBlockNode top)
    {
        ArgumentNullException.ThrowIfNull(top);
        for (var node = top; node is not null; node = node.Backing)
        {
            yield return node;
        }
    }

    /// <summary>How many backing links lead from <paramref name="top"/> to <paramref name="target"/> (-1: not in the chain).</summary>
    public static int DepthOf(this IBlockNode top, IBlockNode target)
    {
        int depth = 0;
        foreach (var node in top.Layers())
        {
            if (ReferenceEquals(node, target))
            {
                return depth;
            }

            depth++;
        }

        return -1;
    }

    /// <summary>The layer directly above <paramref name="node"/> in the chain of <paramref name="top"/> (null: none, or it is the top).</summary>
    public static IBlockNode? ParentOf(this IBlockNode top, IBlockNode node) =>
        top.Layers().FirstOrDefault(n => ReferenceEquals(n.Backing, node));

    /// <summary>The first layer from <paramref name="top"/> down whose file is <paramref name="fullPath"/> (compared as full paths).</summary>
    public static IBlockNode? FindByFile(this IBlockNode top, string fullPath) => top.FindByFile(fullPath, Path.GetFullPath);

    /// <summary>
    /// The first layer from <paramref name="top"/> down whose file's <paramref name="fullName"/> is
    /// <paramref name="name"/>: images in a store are compared by locator, not as paths.
    /// </summary>
    public static IBlockNode? FindByFile(this IBlockNode top, string name, Func<string, string> fullName)
    {
        ArgumentNullException.ThrowIfNull(fullName);
        return top.Layers().FirstOrDefault(n => n.FileName is { } file && fullName(file) == name);
    }
}
