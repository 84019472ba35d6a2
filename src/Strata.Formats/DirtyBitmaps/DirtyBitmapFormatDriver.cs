using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Block.Drivers;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// The dirty_bitmap format (docs/formats/dirty-bitmap.md) as the image tools see it: probed by its
/// magic, created by <c>img create -f dirty_bitmap -o cluster_size=…</c>, and opened read-only as a
/// <see cref="DirtyBitmapView"/> for <c>img info</c> and <c>img map</c>. It is no disk: a read-write
/// open is refused, since only tracking (<see cref="DirtyBitmapFiles"/>) writes such a file.
/// </summary>
public sealed class DirtyBitmapFormatDriver : IFormatDriver
{
    public const string FormatName = "dirty_bitmap";

    /// <summary>The granularity, spelled as qemu-img spells a format's allocation unit.</summary>
    public const string ClusterSizeOption = "cluster_size";

    public const long DefaultGranularity = 65536;

    private const int SignatureScore = 100;

    // What testing for a tracker asks: to forbid writers, which a tracker's write lock refuses.
    private static readonly NodePermissions ForbidWriters = new(BlockPermissions.None, BlockPermissions.All & ~BlockPermissions.Write);

    public string Name => FormatName;

    public bool IsDisk => false;

    public IReadOnlyList<CreateOption> CreateOptions { get; } =
    [
        new(ClusterSizeOption, CreateOptionType.Size, "65536"),
        new(CreateOption.Size, CreateOptionType.Size),
    ];

    public int Probe(ReadOnlySpan<byte> start) => start.StartsWith(DirtyBitmapHeader.Magic) ? SignatureScore : 0;

    /// <summary>Readers hold what they ask and share everything else: a tracker keeps writing while they read.</summary>
    public NodePermissions FilePermissions(NodePermissions user, bool readOnly) => user;

    public async ValueTask<IBlockNode> OpenAsync(IBlockNode file, FormatOpenRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            if (!request.ReadOnly)
            {
                throw BlockException.NotSupported($"'{request.Locator}' is a dirty_bitmap file, not a disk image: only tracking writes it (set_dirty)");
            }

            string description = request.Locator.ToString();
            var header = await DirtyBitmapFile.ReadHeaderAsync(file, description, cancellationToken);
            bool tracked = header.State == DirtyBitmapFileState.Active && IsTracked(file);
            var bits = new DirtyBitmap(header.DiskSize, header.Granularity);
            var loaded = await DirtyBitmapFile.LoadAsync(file, header, bits, cancellationToken);
            return new DirtyBitmapView(file, header, bits, loaded, tracked);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }
    }

    public FormatCreatePlan PlanCreate(FormatCreateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        long granularity = DefaultGranularity;
        foreach (var (name, value) in request.Options)
        {
            granularity = name == ClusterSizeOption && ImageCreator.TryParseSize(value, out long size) ? size
                : name == ClusterSizeOption ? throw BlockException.Invalid($"Parameter '{name}' expects a size")
                : throw BlockException.Invalid($"Invalid parameter '{name}'");
        }

        DirtyBitmap.ValidateGranularity(granularity);
        return new DirtyBitmapCreatePlan(DirtyBitmapHeader.ForNew(request.Size, granularity));
    }

    /// <summary>
    /// Whether another open of the file holds it for writing (a live tracker): found by asking to
    /// forbid writers, then giving that up again. A node without locks never reports one.
    /// </summary>
    private static bool IsTracked(IBlockNode file)
    {
        try
        {
            file.SetPermissions(ForbidWriters, PermissionCheck.Probe);
            return false;
        }
        catch (BlockException e) when (e.Error == BlockError.Locked)
        {
            return true;
        }
        finally
        {
            file.SetPermissions(NodePermissions.None, PermissionCheck.Skip);
        }
    }
}
