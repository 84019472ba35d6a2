using Strata.TestKit;

namespace Strata.Vm.Tests;

/// <summary>The host's view of the guest's data disk: a raw image with ext4, made, checked and read with e2fsprogs, no mount and no root needed.</summary>
public static class Ext4Image
{
    public static void Create(string path, string size)
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", path, size).AssertSuccess();
        Processes.Run("mkfs.ext4", "-q", "-F", path).AssertSuccess();
    }

    /// <summary><c>e2fsck -fn</c>: a full check that changes nothing; the result's exit code is 0 when the file system is clean.</summary>
    public static ProcessResult Check(string path) => Processes.Run("e2fsck", "-fn", path);

    /// <summary>Copies the whole file system tree out of the image into <paramref name="destination"/> (debugfs rdump).</summary>
    public static void Extract(string image, string destination)
    {
        Directory.CreateDirectory(destination);
        var result = Processes.Run("debugfs", "-R", $"rdump / {destination}", image).AssertSuccess();
        if (result.Stderr.Contains("rdump:", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"debugfs could not copy everything:\n{result}");
        }
    }
}
