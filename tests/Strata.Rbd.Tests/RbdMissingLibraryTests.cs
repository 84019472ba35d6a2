using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// A host without Ceph's client libraries: <c>strata</c> runs in a user and mount namespace
/// (<c>unshare -rm</c>, no root needed) in which librados is an empty file, as on a machine where
/// librbd1 and librados2 were never installed. Every other command works there; an rbd: image gets
/// one line that says what to install, never a loader's stack trace.
/// </summary>
public sealed class RbdMissingLibraryTests
{
    [Fact]
    public async Task WithoutLibradosAnRbdImageIsOneLineSayingWhatToInstallAndLocalImagesStillWork()
    {
        using var folder = new TempFolder("rbd-nolib");
        string local = folder.File("local.raw");
        File.WriteAllBytes(local, new byte[1 << 20]);
        string librados = ResolveLink(LoaderPath("librados.so.2"));

        const string script = """
            set -e
            library=$1; shift
            mount --bind /dev/null "$library"
            "$@" img info rbd:rbd/image || echo "exit $?" >&2
            "$@" img info -f raw "$LOCAL_IMAGE"
            """;
        var result = await Processes.RunAsync("unshare", ["-rm", "sh", "-c", script, "sh", librados, Processes.DotnetHost(), Processes.StrataDll],
            new ProcessOptions { Environment = new Dictionary<string, string?> { ["LOCAL_IMAGE"] = local } });

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(
            ["strata img: rbd: images need librbd, which is not installed (Debian package librbd1)", "exit 1"],
            result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("virtual size: 1 MiB", result.Stdout, StringComparison.Ordinal);
    }

    /// <summary>Where the dynamic loader finds <paramref name="soname"/> (ldconfig's cache), failing when it does not.</summary>
    private static string LoaderPath(string soname)
    {
        string cache = Processes.Ok("/sbin/ldconfig", "-p");
        string? line = cache.Split('\n').FirstOrDefault(l => l.TrimStart().StartsWith(soname + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"{soname} is not in the loader's cache:\n{cache}");
        return line![(line.IndexOf("=> ", StringComparison.Ordinal) + 3)..].Trim();
    }

    /// <summary>The file a library's soname link points to: the bind mount must cover the file the loader opens.</summary>
    private static string ResolveLink(string path) =>
        new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
}
