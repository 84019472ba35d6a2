using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Block.Drivers;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// Opens and creates dirty_bitmap files for tracking (<see cref="IBitmapFiles"/>), through the
/// registry's protocol drivers, so a bitmap may live wherever an image may. A tracking open takes
/// the file's lock as a writer does (QEMU's lock bytes, docs/locking.md): a second tracker, in this
/// process or another, Strata's or QEMU's, is refused with <see cref="BlockError.Locked"/> naming
/// the holder, while readers (<c>img info</c>, a backup) still read the file.
/// </summary>
public sealed class DirtyBitmapFiles(DriverRegistry drivers) : IBitmapFiles
{
    /// <summary>What a tracker holds on its file: it writes, and lets others only read.</summary>
    public static NodePermissions TrackerPermissions => NodePermissions.Writer;

    public bool Exists(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var locator = drivers.Locate(path);
        return locator.IsFile ? File.Exists(locator.Target) : throw BlockException.NotSupported($"'{path}': only local dirty_bitmap files are supported");
    }

    public async ValueTask<IBitmapStore> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        var locator = drivers.Locate(path);
        var protocol = drivers.Protocol(locator);
        var file = await protocol.OpenAsync(locator, new ProtocolOpenOptions(), cancellationToken);
        try
        {
            file.SetPermissions(TrackerPermissions, PermissionCheck.Conflicts);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }

        return await DirtyBitmapStore.OpenAsync(file, path, () => protocol.DeleteAsync(locator, CancellationToken.None), cancellationToken);
    }

    public async ValueTask<IBitmapStore> CreateAsync(string path, long diskSize, long granularity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        var header = DirtyBitmapHeader.ForNew(diskSize, granularity);
        var locator = drivers.Locate(path);
        var protocol = drivers.Protocol(locator);
        var file = await protocol.CreateAsync(locator, header.FileLength, mustBeNew: true, cancellationToken);
        try
        {
            file.SetPermissions(TrackerPermissions, PermissionCheck.Conflicts);
            await DirtyBitmapFile.FormatAsync(file, header, cancellationToken);
        }
        catch
        {
            // A failed command leaves no stray file (DESIGN.md rule 4): the file is ours, made just now.
            await file.DisposeAsync();
            await protocol.DeleteAsync(locator, CancellationToken.None);
            throw;
        }

        return await DirtyBitmapStore.OpenAsync(file, path, () => protocol.DeleteAsync(locator, CancellationToken.None), cancellationToken);
    }
}
