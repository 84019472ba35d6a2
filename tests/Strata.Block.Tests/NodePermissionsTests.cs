using static Strata.Block.BlockPermissions;

namespace Strata.Block.Tests;

/// <summary>QEMU's permission rules (block.c, bdrv_default_perms), on the uses whose lock bytes QEMU 7.2 was seen to take.</summary>
public sealed class NodePermissionsTests
{
    /// <summary>qemu-storage-daemon's writable export: reads and writes, shares everything (block/export/export.c).</summary>
    private static readonly NodePermissions WritableExport = new(ConsistentRead | Write, All);

    [Fact]
    public void AWritableQcow2ImageTakesWriteAndResizeOnItsFileAndForbidsThemToOthers()
        => Assert.Equal(new NodePermissions(ConsistentRead | Write | Resize, ConsistentRead | WriteUnchanged), WritableExport.ForMetadataFile(writable: true));

    [Fact]
    public void AReadOnlyQcow2ImageStillForbidsOthersToWriteItsFile()
        => Assert.Equal(new NodePermissions(ConsistentRead, ConsistentRead | WriteUnchanged), new NodePermissions(ConsistentRead, All).ForMetadataFile(writable: false));

    [Fact]
    public void ForceShareKeepsEverythingSharedDownTheChain()
    {
        var forced = new NodePermissions(ConsistentRead, All).WithForceShare();
        Assert.Equal(All, forced.ForMetadataFile(writable: false).Shared);
        Assert.Equal(All, forced.ForBacking().Shared);
        Assert.Equal(All, forced.ForBacking().ForMetadataFile(writable: false).Shared);
    }

    [Fact]
    public void ABackingFileIsOnlyReadAndMayBeWrittenByOthersOnlyIfTheImagesUserLetsOthersWrite()
    {
        Assert.Equal(new NodePermissions(ConsistentRead, All), WritableExport.ForBacking());
        Assert.Equal(new NodePermissions(ConsistentRead, ConsistentRead | WriteUnchanged), NodePermissions.Writer.ForBacking());
        Assert.Equal(NodePermissions.Writer.ForBacking(), NodePermissions.Writer.ForBacking().ForBacking());
    }

    [Fact]
    public void AnUnchangingWriterOfAnImageMayStillAllocateAndGrowItsFile()
        => Assert.Equal(ConsistentRead | Write | WriteUnchanged | Resize, new NodePermissions(ConsistentRead | WriteUnchanged, All).ForMetadataFile(writable: false).Held);

    [Fact]
    public void ANodeWithoutLocksAcceptsAnyPermissions()
    {
        IBlockNode node = new MemoryNode(4096);
        node.SetPermissions(NodePermissions.Writer, PermissionCheck.Conflicts);
        node.SetPermissions(NodePermissions.None, PermissionCheck.Skip);
    }
}
