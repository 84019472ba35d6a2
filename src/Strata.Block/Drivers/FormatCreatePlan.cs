namespace Strata.Block.Drivers;

/// <summary>
/// A checked image creation: the settings the image will have and how to write it on a new, empty
/// protocol node.
/// </summary>
public abstract class FormatCreatePlan(long size, IReadOnlyList<KeyValuePair<string, string>> settings)
{
    public long Size { get; } = size;

    /// <summary>
    /// Every setting the image gets, defaults included, by option name (<see cref="CreateOption"/>),
    /// in the format's order.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> Settings { get; } = settings;

    /// <summary>How many bytes the new file holds before <see cref="WriteAsync"/> (raw: the whole disk, sparse).</summary>
    public virtual long InitialFileSize => 0;

    /// <summary>Writes the image on <paramref name="file"/>, which has <see cref="InitialFileSize"/> zero bytes.</summary>
    public abstract ValueTask WriteAsync(IBlockNode file, CancellationToken cancellationToken = default);
}
