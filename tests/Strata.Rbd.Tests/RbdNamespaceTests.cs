using Strata.Cli.Tests;
using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// RBD namespaces (rbd:POOL/NAMESPACE/IMAGE, QEMU's spelling since 4.0): an image Strata makes in a
/// namespace is the one QEMU's rbd driver and the rbd tool find there, and nothing of it appears in
/// the pool's default namespace under the same name.
/// </summary>
public sealed class RbdNamespaceTests
{
    private const int Size = 8 << 20;

    [Fact]
    public void AnImageStrataWritesInANamespaceIsReadThereByQemuImgAndRbdExportAndNotOutsideIt()
    {
        var cluster = CephCluster.Shared;
        string ns = CephCluster.UniqueName("ns");
        string name = CephCluster.UniqueName("nsimg");
        string spec = $"{cluster.Pool}/{ns}/{name}";
        string locator = $"rbd:{spec}:conf={cluster.Conf}";
        using var folder = new TempFolder("rbd-ns");
        string source = folder.File("source.raw");
        var bytes = new byte[Size];
        RbdImageNodeTests.Pattern(3 << 20, 31).CopyTo(bytes, 2 << 20);
        File.WriteAllBytes(source, bytes);
        cluster.Rbd("namespace", "create", $"{cluster.Pool}/{ns}");
        try
        {
            StrataCli.ImgOk("create", "-f", "raw", locator, Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            StrataCli.ImgOk("convert", "-n", "-O", "raw", source, locator);

            Processes.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", source, locator);
            string exported = folder.File("export.raw");
            cluster.Rbd("export", "--no-progress", spec, exported);
            Assert.True(File.ReadAllBytes(exported).AsSpan().SequenceEqual(bytes), "rbd export of the namespaced image differs from what Strata wrote");
            Assert.Contains(name, cluster.Rbd("ls", "--namespace", ns, cluster.Pool), StringComparison.Ordinal);
            Assert.DoesNotContain(name, cluster.Rbd("ls", cluster.Pool), StringComparison.Ordinal);

            // The same name outside the namespace is another image: here, none.
            var outside = StrataCli.Img("info", cluster.RbdLocator(name));
            Assert.NotEqual(0, outside.ExitCode);
            Assert.Single(outside.Stderr.Trim().Split('\n'));
        }
        finally
        {
            var options = new ProcessOptions { Timeout = TimeSpan.FromMinutes(1) };
            Processes.Run("rbd", ["-c", cluster.Conf, "rm", "--no-progress", spec], options);
            Processes.Run("rbd", ["-c", cluster.Conf, "namespace", "remove", $"{cluster.Pool}/{ns}"], options);
        }
    }
}
