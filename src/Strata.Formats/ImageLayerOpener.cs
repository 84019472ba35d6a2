using Strata.Block;
using Strata.Block.Drivers;
using Strata.Block.Graph;
using Strata.Formats.Raw;

namespace Strata.Formats;

/// <summary>
/// Opens, creates and reopens the layers of a drive's graph on local image files, over
/// <see cref="ImageOpener"/> and <see cref="ImageCreator"/> (the engine's <see cref="ILayerOpener"/>).
/// Overlays are qcow2.
/// </summary>
public sealed class ImageLayerOpener : ILayerOpener
{
    private readonly DriverRegistry _drivers;

    /// <summary>An opener over <paramref name="drivers"/> (null: <see cref="StandardDrivers.Registry"/>).</summary>
    public ImageLayerOpener(DriverRegistry? drivers = null) => _drivers = drivers ?? StandardDrivers.Registry;

    /// <inheritdoc/>
    public async ValueTask<LayerChain> OpenChainAsync(string file, LayerOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var top = await ImageOpener.OpenAsync(file, ToImageOptions(options), cancellationToken);

        // The opener hands the chain over with owning edges; the caller's chain owns every layer instead.
        return LayerChain.Adopt(top);
    }

    /// <inheritdoc/>
    public ValueTask<IBlockNode> OpenLayerAsync(string file, LayerOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ImageOpener.OpenAsync(file, ToImageOptions(options) with { OpenBacking = false }, cancellationToken);
    }

    /// <inheritdoc/>
    public async ValueTask CreateOverlayAsync(string file, IBlockNode backing, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(backing);
        string backingFile = FullName(backing.FileName ?? throw BlockException.NotSupported($"a {backing.DriverName} node has no file to record as a backing file"));
        if (!_drivers.Locate(file).IsFile)
        {
            // A store has no rename: the image is made under its own name, new, and removed by
            // ImageCreator if writing it fails.
            var direct = await ImageCreator.PlanAsync(_drivers, file, ImageOpener.Qcow2Format, backing.Size, backingFile, backing.DriverName, [], cancellationToken);
            await ImageCreator.CreateAsync(direct, FileCreation.New, cancellationToken);
            return;
        }


        // Made under a temporary name and renamed once complete, so that a crash half-way leaves no
        // half-written image under the name asked for. Whoever can write in the folder may have
        // planted something at either name: the temporary is made only if nothing has its name
        // (O_EXCL, O_NOFOLLOW; ImageCreator removes it if writing fails) and the rename replaces
        // nothing, so no link is followed and no file replaced.
        string partial = file + ".partial";
        var plan = await ImageCreator.PlanAsync(_drivers, partial, ImageOpener.Qcow2Format, backing.Size, backingFile, backing.DriverName, [], cancellationToken);
        await ImageCreator.CreateAsync(plan, FileCreation.New, cancellationToken);
        try
        {
            NewFile.Move(partial, file);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
    }

    /// <inheritdoc/>
    public async ValueTask<IBlockNode> ReopenAsync(IBlockNode layer, NodePermissions current, NodePermissions wanted, LayerOpenOptions options,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(options);
        return await ImageOpener.ReopenAsync(layer, current, wanted, ToImageOptions(options), cancellationToken);
    }

    /// <inheritdoc/>
    public string FullName(string file) => _drivers.Locate(file).FullName;

    /// <inheritdoc/>
    /// <remarks>An image in a store exists when its protocol opens it read-only.</remarks>
    public bool Exists(string file)
    {
        var locator = _drivers.Locate(file);
        if (locator.IsFile)
        {
            return File.Exists(file);
        }

        try
        {
            _drivers.Protocol(locator).OpenAsync(locator, new ProtocolOpenOptions { ReadOnly = true }).AsTask().GetAwaiter().GetResult()
                .DisposeAsync().AsTask().GetAwaiter().GetResult();
            return true;
        }
        catch (BlockException)
        {
            return false;
        }
    }

    /// <inheritdoc/>
    public void Delete(string file)
    {
        var locator = _drivers.Locate(file);
        if (locator.IsFile)
        {
            File.Delete(file);
            return;
        }

        _drivers.Protocol(locator).DeleteAsync(locator).AsTask().GetAwaiter().GetResult();
    }

    /// <inheritdoc/>
    public string ResolveBackingFile(string overlayFile, string backingName) => _drivers.ResolveBacking(overlayFile, backingName).FullName;

    private ImageOpenOptions ToImageOptions(LayerOpenOptions options)
        => new() { Format = options.Format, ReadOnly = options.ReadOnly, Direct = options.Direct, Drivers = _drivers };
}
