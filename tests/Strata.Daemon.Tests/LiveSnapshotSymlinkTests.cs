using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// A snapshot creates its overlay under a temporary name (NAME.partial) and renames it; whoever can
/// write in the folder may plant a symbolic link at either name first. The daemon must never write
/// through one, nor rename over one: the command fails, the link's target is untouched (or, when it
/// does not exist, not created), and nothing of ours stays.
/// </summary>
public sealed class LiveSnapshotSymlinkTests
{
    [Theory]
    [InlineData(".partial", true)]
    [InlineData(".partial", false)]
    [InlineData("", true)]
    [InlineData("", false)]
    public async Task ASymlinkPlantedAtEitherNameIsNeverFollowedNorReplaced(string suffix, bool targetExists)
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string overlay = d.Folder.File("tmp_disk.img");
        string victim = d.Folder.File("victim");
        byte[] precious = "the host's precious file\n"u8.ToArray();
        if (targetExists)
        {
            await File.WriteAllBytesAsync(victim, precious);
        }

        File.CreateSymbolicLink(overlay + suffix, victim);
        var before = Listing(d.Folder);

        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay, ["format"] = "qcow2",
        }));

        Assert.Equal("GenericError", e.ErrorClass);
        Assert.Contains($"'{overlay + suffix}'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        if (targetExists)
        {
            Assert.Equal(precious, await File.ReadAllBytesAsync(victim));
        }
        else
        {
            Assert.False(File.Exists(victim), "the snapshot created the file the planted link names");
        }

        Assert.Equal(before, Listing(d.Folder));
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(d.BaseImage, block[0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.Null(block[0]!["inserted"]!["backing_file"]);
    }

    /// <summary>Every name in the folder with what it is (a link shows its target), so a swapped or added entry shows.</summary>
    private static string[] Listing(TempFolder folder) => Directory.EnumerateFileSystemEntries(folder.Path)
        .Select(p => new FileInfo(p) is { LinkTarget: { } link } ? $"{p} -> {link}" : $"{p} ({new FileInfo(p).Length} bytes)")
        .Order()
        .ToArray();
}
