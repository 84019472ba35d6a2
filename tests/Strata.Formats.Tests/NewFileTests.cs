using Strata.Block;
using Strata.Formats.Raw;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>Files that must be new and renames that must not replace: whatever already has the name stays as it was.</summary>
public sealed class NewFileTests
{
    [Fact]
    public void MoveNeverReplacesAFileOrALinkAtTheNewName()
    {
        using var dir = new TempFolder();
        string from = dir.File("a.partial");
        File.WriteAllText(from, "ours");
        string taken = dir.File("taken");
        File.WriteAllText(taken, "theirs");
        string link = dir.File("link");
        File.CreateSymbolicLink(link, dir.File("nowhere"));

        var e = Assert.Throws<BlockException>(() => NewFile.Move(from, taken));
        Assert.Equal($"Could not create '{taken}': it already exists", e.Message);
        e = Assert.Throws<BlockException>(() => NewFile.Move(from, link));
        Assert.Equal($"Could not create '{link}': it is a symbolic link, which is never followed", e.Message);

        Assert.Equal("theirs", File.ReadAllText(taken));
        Assert.Equal(dir.File("nowhere"), new FileInfo(link).LinkTarget);
        Assert.Equal("ours", File.ReadAllText(from));
        NewFile.Move(from, dir.File("a"));
        Assert.Equal("ours", File.ReadAllText(dir.File("a")));
        Assert.False(File.Exists(from));
    }

    [Fact]
    public void WriteAllTextRefusesAnythingAlreadyThere()
    {
        using var dir = new TempFolder();
        string path = dir.File("serve.pid.tmp");
        File.WriteAllText(path, "stale");

        var e = Assert.Throws<BlockException>(() => NewFile.WriteAllText(path, "123\n"));

        Assert.Equal($"Could not create '{path}': it already exists", e.Message);
        Assert.Equal("stale", File.ReadAllText(path));
        File.Delete(path);
        NewFile.WriteAllText(path, "123\n");
        Assert.Equal("123\n", File.ReadAllText(path));
    }

    [Fact]
    public async Task ANewImageRefusesAnExistingFileAndLeavesItAlone()
    {
        using var dir = new TempFolder();
        string path = dir.File("overlay.qcow2.partial");
        File.WriteAllText(path, "someone else's");
        var plan = await ImageCreator.PlanAsync(path, ImageOpener.Qcow2Format, 1 << 20, null, null, []);

        var e = await Assert.ThrowsAsync<BlockException>(async () => await ImageCreator.CreateAsync(plan, FileCreation.New));

        Assert.Equal($"Could not create '{path}': it already exists", e.Message);
        Assert.Equal("someone else's", File.ReadAllText(path));
    }
}
