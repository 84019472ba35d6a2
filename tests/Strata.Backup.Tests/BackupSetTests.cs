using Strata.TestKit;

namespace Strata.Backup.Tests;

public sealed class BackupSetTests
{
    [Fact]
    public void APointExistsOnlyOnceItsManifestIsCommitted()
    {
        using var folder = new TempFolder("bset");
        var set = BackupSet.Open(folder.File("set"), create: true);

        var after = set.Commit(Manifests.Full());

        Assert.Empty(set.Points);
        Assert.Single(after.Points);
        Assert.Single(BackupSet.Open(folder.File("set")).Points);
        Assert.False(File.Exists(folder.File("set/0000.json.tmp")));
    }

    [Fact]
    public void WhatARunThatDiedLeftIsRemovedAndNothingElse()
    {
        using var folder = new TempFolder("bset");
        var set = BackupSet.Open(folder.Path).Commit(Manifests.Full());
        foreach (string name in new[] { "0000.qcow2", "0001.qcow2", "0001.json.tmp", "0002.qcow2", "notes.txt", "disk.qcow2" })
        {
            File.WriteAllText(folder.File(name), "x");
        }

        var removed = set.RemoveHalfMade();

        Assert.Equal(["0001.json.tmp", "0001.qcow2", "0002.qcow2"], removed);
        Assert.True(File.Exists(folder.File("0000.qcow2")));
        Assert.True(File.Exists(folder.File("notes.txt")));
        Assert.True(File.Exists(folder.File("disk.qcow2")));
    }

    [Fact]
    public void AHalfWrittenManifestIsNoPoint()
    {
        using var folder = new TempFolder("bset");
        BackupSet.Open(folder.Path).Commit(Manifests.Full());
        File.WriteAllText(folder.File("0001.json.tmp"), "{ \"version\": 1, \"poi");

        Assert.Single(BackupSet.Open(folder.Path).Points);
    }

    [Fact]
    public void AMissingSetIsOneLine()
    {
        var e = Assert.Throws<BackupException>(() => BackupSet.Open("/nonexistent/set"));

        Assert.Equal("/nonexistent/set: no such backup set", e.Message);
    }

    [Theory]
    [InlineData(null, 1)]
    [InlineData("last", 1)]
    [InlineData("0", 0)]
    [InlineData("0001", 1)]
    [InlineData("0001.qcow2", 1)]
    public void APointIsFoundByNumberFileNameOrLast(string? name, int point)
    {
        using var folder = new TempFolder("bset");
        var full = Manifests.Full();
        var set = BackupSet.Open(folder.Path).Commit(full).Commit(full with
        {
            Point = 1, Kind = BackupKind.Incremental, Image = BackupSet.ImageName(1), Backing = BackupSet.ImageName(0),
        });

        Assert.Equal(point, set.Find(name).Point);
    }

    [Fact]
    public void AnUnknownPointIsOneLine()
    {
        using var folder = new TempFolder("bset");
        var set = BackupSet.Open(folder.Path).Commit(Manifests.Full());

        var e = Assert.Throws<BackupException>(() => set.Find("7"));

        Assert.Equal("7: no such point (the set has points 0 to 0)", e.Message);
    }
}
