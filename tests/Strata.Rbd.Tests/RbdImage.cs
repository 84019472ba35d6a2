using Strata.Block;
using Strata.Block.Drivers;
using Strata.Formats;
using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// An image name in the shared test cluster that no other test uses, removed (with its snapshots)
/// when the test ends, whoever made it.
/// </summary>
public sealed class RbdImage : IDisposable
{
    public RbdImage(string prefix = "img")
    {
        Name = CephCluster.UniqueName(prefix);
    }

    public static CephCluster Cluster => CephCluster.Shared;

    /// <summary>The image's name in the pool.</summary>
    public string Name { get; }

    /// <summary>POOL/IMAGE, as the rbd tool takes it.</summary>
    public string Spec => $"{Cluster.Pool}/{Name}";

    /// <summary>QEMU's and Strata's spelling: rbd:POOL/IMAGE:conf=PATH.</summary>
    public string Locator => Cluster.RbdLocator(Name);

    /// <summary>The locator of snapshot <paramref name="snapshot"/>: rbd:POOL/IMAGE@SNAP:conf=PATH.</summary>
    public string SnapshotLocator(string snapshot) => $"rbd:{Spec}@{snapshot}:conf={Cluster.Conf}";

    /// <summary>Opens the image's bytes through the standard drivers, as the opener does.</summary>
    public ValueTask<IBlockNode> OpenAsync(bool readOnly = false) => OpenAsync(Locator, readOnly);

    /// <summary>Opens <paramref name="locator"/>'s bytes; <paramref name="direct"/> is cache=none.</summary>
    public static ValueTask<IBlockNode> OpenAsync(string locator, bool readOnly = false, bool direct = false)
    {
        var registry = StandardDrivers.Registry;
        var located = registry.Locate(locator);
        return registry.Protocol(located).OpenAsync(located, new ProtocolOpenOptions { ReadOnly = readOnly, Direct = direct });
    }

    /// <summary>Creates the image through the standard drivers and returns it open, holding its lock.</summary>
    public ValueTask<IBlockNode> CreateAsync(long size)
    {
        var located = StandardDrivers.Registry.Locate(Locator);
        return StandardDrivers.Registry.Protocol(located).CreateAsync(located, size, mustBeNew: true);
    }

    /// <summary>The image's bytes as <c>rbd export</c> writes them.</summary>
    public byte[] Export(string? snapshot = null)
    {
        using var folder = new TempFolder("rbd-export");
        string file = folder.File("export.raw");
        Cluster.Rbd("export", snapshot is null ? Spec : $"{Spec}@{snapshot}", file);
        return File.ReadAllBytes(file);
    }

    public void Dispose()
    {
        var options = new ProcessOptions { Timeout = TimeSpan.FromMinutes(1) };
        Processes.Run("rbd", ["-c", Cluster.Conf, "snap", "purge", Spec], options);
        Processes.Run("rbd", ["-c", Cluster.Conf, "rm", "--no-progress", Spec], options);
    }
}
