namespace Strata.Block;

/// <summary>
/// A layer that records in its own metadata which file backs it (qcow2's header): the name as
/// written, the format, and a way to change both. Graph operations use it to re-point a layer after
/// a merge or a rebase without knowing the driver.
/// </summary>
public interface IBackingFileRecord
{
    /// <summary>The backing file's name as recorded (relative names relative to this layer's folder); null: none.</summary>
    string? BackingFileName { get; }

    /// <summary>The backing file's format as recorded; null: none recorded (it is probed).</summary>
    string? BackingFormat { get; }

    /// <summary>Records another backing file (null: none), durably before it returns.</summary>
    ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default);
}
