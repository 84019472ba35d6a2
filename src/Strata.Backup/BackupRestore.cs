using Strata.Block;
using Strata.Block.Copy;
using Strata.Formats;
using Strata.Formats.Raw;

namespace Strata.Backup;

/// <summary>
/// Writes the disk a point restores into a new image (raw or qcow2): what <c>qemu-img convert</c> of
/// the point's image does, through the engine's copy loop, zero runs skipped.
/// </summary>
public static class BackupRestore
{
    public static async Task RestoreAsync(BackupSet set, BackupManifest point, string destination, string format, Action<double>? percent = null,
        CancellationToken cancellationToken = default)
    {
        await using var source = await BackupVerifier.OpenPointAsync(set, point, cancellationToken);
        await RestoreAsync(source, destination, format, percent, cancellationToken: cancellationToken);
    }

    /// <summary>
    /// As above, from a point already opened (a store's: a folder, an S3 bucket read with ranged
    /// GETs); <paramref name="parallelism"/> chunks are read at once (a remote store wants more than a disk).
    /// </summary>
    public static async Task RestoreAsync(IBlockNode source, string destination, string format, Action<double>? percent = null,
        int parallelism = 2, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(format);
        try
        {
            var plan = await ImageCreator.PlanAsync(destination, format, source.Size, null, null, [], cancellationToken);
            await ImageCreator.CreateAsync(plan, FileCreation.New, cancellationToken);
        }
        catch (BlockException e)
        {
            throw new BackupException($"{destination}: {e.Message}", e);
        }

        try
        {
            await using var target = await ImageOpener.OpenAsync(destination, new ImageOpenOptions { Format = format, ReadOnly = false }, cancellationToken);
            var copy = new BlockCopy(ChainView.Whole(source), target, new BlockCopyOptions { TargetIsZero = true, DetectZeroes = true, Parallelism = parallelism });
            await copy.CopyAllAsync(source.Size, percent, cancellationToken);
            await target.FlushAsync(cancellationToken);
        }
        catch
        {
            File.Delete(destination);
            throw;
        }
    }
}
