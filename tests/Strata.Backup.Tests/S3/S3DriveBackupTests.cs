using System.Text.Json;
using Strata.TestKit;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// <c>strata backup create s3://… --drive ID</c> against a live daemon written by a seeded writer,
/// with the set in the test cluster's gateway and the bitmaps, overlay and journal in a local state
/// folder: full then incremental, each point restored with <c>strata backup restore</c> from the
/// store and compared with the disk as it was then; a lost or foreign state folder gives a full
/// point with its reason; a killed run is finished by the next, which stays incremental; an upload
/// the gateway cut is resumed by the next run before it makes its own incremental.
/// </summary>
public sealed class S3DriveBackupTests
{
    private const long Size = 64 << 20;

    [Fact]
    public async Task LiveBackupsIntoTheStoreAreFullThenIncrementalAndEachRestoresEqualToTheDiskThen()
    {
        using var s3 = new S3Fixture();
        using var folder = new TempFolder("bs3drive");
        await using var drive = Drive(s3, folder, Workload.NewSeed(), defaultState: true);
        string qcow2 = folder.File("disk.qcow2");
        Processes.Ok("qemu-img", "convert", "-f", "raw", "-O", "qcow2", drive.Disk, qcow2);
        await drive.StartAsync(qcow2, "qcow2");
        var models = new List<string>();
        for (int round = 0; round < 3; round++)
        {
            drive.Write(16);
            models.Add(await drive.SaveModelAsync($"model{round}.img"));

            Assert.Equal(round == 0 ? "full" : "incremental", await drive.BackupAsync());
        }

        var list = await s3.StrataOkAsync("backup", "list", s3.Set, "--output=json");
        using (var points = JsonDocument.Parse(list.Stdout))
        {
            Assert.Equal(["full", "incremental", "incremental"], points.RootElement.EnumerateArray().Select(p => p.GetProperty("kind").GetString()));
            Assert.All(points.RootElement.EnumerateArray(), p => Assert.Null(p.GetProperty("fallback").GetString()));
        }

        (await s3.StrataAsync(["backup", "verify", s3.Set])).AssertSuccess();
        for (int point = 0; point < models.Count; point++)
        {
            await s3.AssertRestoresAsync(point, models[point], $"seed {drive.Seed}");
        }

        // The state stays on this host where the default says, one bitmap tracking; the store holds only the set.
        Assert.Single(Directory.GetFiles(Path.Combine(s3.DefaultDriveState, "bitmaps"), "*.dbmp"));
        Assert.Empty(Directory.GetFiles(Path.Combine(s3.DefaultDriveState, "work")));
        Assert.Equal([qcow2], await drive.ChainAsync());
        Assert.Equal(["0000.json", "0000.qcow2", "0001.json", "0001.qcow2", "0002.json", "0002.qcow2"],
            (await s3.KeysAsync()).Select(k => k["vm/disk0/".Length..]));
        Assert.Empty(await s3.UploadsAsync());
    }

    [Fact]
    public async Task ALostStateFolderOrAnotherOneMakesTheNextPointFullWithTheReasonAndTheOneAfterIncremental()
    {
        using var s3 = new S3Fixture();
        using var folder = new TempFolder("bs3drive");
        await using var drive = await WithFullPointAsync(s3, folder, defaultState: false);

        Directory.Delete(drive.StateFolder, recursive: true);
        drive.Write(12);
        string lost = await drive.SaveModelAsync("lost.img");
        var afterLoss = await drive.CreateAsync();
        Assert.Equal("full", drive.Kind(afterLoss));
        Assert.StartsWith($"bitmap file {drive.StateFolder}/bitmaps/backup-0000-", Fallback(afterLoss), StringComparison.Ordinal);
        Assert.EndsWith($"is not in the state folder {drive.StateFolder} (lost, or the set was last backed up from another host)", Fallback(afterLoss),
            StringComparison.Ordinal);

        drive.Write(12);
        string again = await drive.SaveModelAsync("again.img");
        Assert.Equal("incremental", await drive.BackupAsync());

        // Another host's state, or another --state here: no bitmap of the last point is kept there.
        drive.ExtraArguments = ["--state", folder.File("other-state")];
        drive.Write(12);
        string other = await drive.SaveModelAsync("other.img");
        var elsewhere = await Processes.StrataAsync(drive.CreateArguments.Where(a => a != "--output=json"), drive.Options);
        Assert.True(elsewhere.ExitCode == 0, $"seed {drive.Seed}: {elsewhere}");
        Assert.StartsWith("point 3 (full): ", elsewhere.Stdout, StringComparison.Ordinal);
        Assert.Equal($"strata backup: full backup instead of incremental: point 2 recorded no bitmap kept in {folder.File("other-state")}/bitmaps "
            + "(it was made with --image, or with another state folder or host)\n", elsewhere.Stderr);

        string[] models = [lost, again, other];
        for (int point = 1; point <= 3; point++)
        {
            await s3.AssertRestoresAsync(point, models[point - 1], $"seed {drive.Seed}");
        }

        // A state folder serves one set: given for another, it is refused before anything is done.
        using var s3b = new S3Fixture();
        var refused = await s3b.StrataAsync(["backup", "create", s3b.Set, "--drive", "d0", "--qmp", drive.Qmp, .. drive.ExtraArguments]);
        LiveDrive.AssertOneLineError(refused, "a state folder of another set");
        Assert.Contains($"holds the live-backup state of {s3.Set} at ", refused.Stderr, StringComparison.Ordinal);
        Assert.Empty(await s3b.KeysAsync());
    }

    [Fact]
    public async Task ABackupKilledAfterItsSnapshotIsFinishedByTheNextOneWhichMergesTheOverlayBackAndStaysIncremental()
    {
        using var s3 = new S3Fixture();
        using var folder = new TempFolder("bs3drive");
        await using var drive = await WithFullPointAsync(s3, folder, defaultState: true);
        drive.Write(48, maxBlocks: 256);

        await using (var backup = BackgroundProcess.Start(Processes.DotnetHost(), [Processes.StrataDll, .. drive.CreateArguments], drive.Options))
        {
            await backup.WaitUntilAsync(() => drive.Overlays().Length > 0, "the backup's snapshot overlay");
            await backup.KillAsync();
        }

        Assert.True(drive.Overlays().Length == 1, $"seed {drive.Seed}: the backup ended before it was killed");
        var listed = await s3.StrataAsync(["backup", "list", s3.Set]);
        Assert.Contains("did not finish", listed.Stderr, StringComparison.Ordinal);
        drive.Write(12);
        string ab = await drive.SaveModelAsync("ab.img");

        var next = await drive.CreateAsync();

        Assert.True(next.ExitCode == 0, $"seed {drive.Seed}: {next}");
        Assert.Contains("merged back", next.Stderr, StringComparison.Ordinal);
        Assert.Equal("incremental", drive.Kind(next));
        Assert.Empty(drive.Overlays());
        Assert.Equal([drive.Disk], await drive.ChainAsync());
        await s3.AssertRestoresAsync(1, ab, $"seed {drive.Seed}");
        drive.Write(8);
        string abc = await drive.SaveModelAsync("abc.img");
        Assert.Equal("incremental", await drive.BackupAsync());
        await s3.AssertRestoresAsync(2, abc, $"seed {drive.Seed}");
        Assert.Single(Directory.GetFiles(Path.Combine(drive.StateFolder, "bitmaps"), "*.dbmp"));
        Assert.False(File.Exists(Path.Combine(drive.StateFolder, "work", "drive.json")));
    }

    [Fact]
    public async Task AnUploadCutByTheGatewayFailsWithExitStatus3AndTheNextRunFinishesThatPointThenMakesItsOwnIncrementalOnIt()
    {
        using var s3 = new S3Fixture();
        using var folder = new TempFolder("bs3drive");
        await using var proxy = GatewayProxy.StoppingPart(s3.Cluster.S3Endpoint, 2, dropOnTrip: true);
        await using var drive = await StartBehindAsync(proxy, s3, folder);
        drive.Fill(4 << 20, 24 << 20, 0x77); // a full point of two 16 MiB parts
        string a = await drive.SaveModelAsync("a.img");

        var cut = await drive.CreateAsync();

        Assert.True(cut.ExitCode == 3, $"seed {drive.Seed}: {cut}");
        Assert.Matches(@"^strata backup: s3://\S+/0000\.qcow2: part 2 of 2: the store did not answer after \d+ attempt\(s\): ", cut.Stderr);
        Assert.Equal([1], await s3.StoredPartsAsync());
        Assert.Empty(drive.Overlays());
        Assert.Equal([drive.Disk], await drive.ChainAsync());

        proxy.Restore();
        drive.Write(12);
        string ab = await drive.SaveModelAsync("ab.img");
        var next = await drive.CreateAsync();

        Assert.Equal("incremental", drive.Kind(next));
        Assert.Matches(@"^strata backup: resumed point 0 of an interrupted backup \(taken [-0-9: ]+ UTC\): 1 of 2 parts were already in the store; "
            + "this run makes its own point on it\n", next.Stderr);
        Assert.Equal(1, Point(next));

        await s3.AssertRestoresAsync(0, a, $"seed {drive.Seed}");
        await s3.AssertRestoresAsync(1, ab, $"seed {drive.Seed}");
        Assert.Empty(await s3.UploadsAsync());
        Assert.Empty(drive.Overlays());
        Assert.Single(Directory.GetFiles(Path.Combine(drive.StateFolder, "bitmaps"), "*.dbmp"));
    }

    [Fact]
    public async Task AnIncrementalWhoseUploadWasCutIsFinishedByTheNextRunWhichStaysIncrementalOnIt()
    {
        // The hand-back of a failed point's bits must not follow a point that was staged whole and
        // only lacks its upload: the next run finishes that incremental, then makes its own on it.
        using var s3 = new S3Fixture();
        using var folder = new TempFolder("bs3drive");
        await using var proxy = GatewayProxy.StoppingPart(s3.Cluster.S3Endpoint, 2, dropOnTrip: true);
        await using var drive = await StartBehindAsync(proxy, s3, folder);
        drive.Write(6, maxBlocks: 8);
        string a = await drive.SaveModelAsync("a.img");
        Assert.Equal("full", await drive.BackupAsync()); // one part: the proxy stops only part 2

        drive.Fill(4 << 20, 24 << 20, 0x66); // an incremental of two 16 MiB parts
        string ab = await drive.SaveModelAsync("ab.img");
        var cut = await drive.CreateAsync();

        Assert.True(cut.ExitCode == 3, $"seed {drive.Seed}: {cut}");
        Assert.Matches(@"s3://\S+/0001\.qcow2: part 2 of 2: ", cut.Stderr);
        Assert.Empty(drive.Overlays());

        proxy.Restore();
        drive.Write(9, maxBlocks: 8);
        string abc = await drive.SaveModelAsync("abc.img");
        var next = await drive.CreateAsync();

        Assert.True(next.ExitCode == 0, $"seed {drive.Seed}: {next}");
        Assert.True(drive.Kind(next) == "incremental", $"cut run: {cut.Stderr}\nnext run: {next.Stderr}");
        Assert.Matches(@"^strata backup: resumed point 1 of an interrupted backup", next.Stderr);
        Assert.Equal(2, Point(next));

        await s3.AssertRestoresAsync(0, a, $"seed {drive.Seed}");
        await s3.AssertRestoresAsync(1, ab, $"seed {drive.Seed}");
        await s3.AssertRestoresAsync(2, abc, $"seed {drive.Seed}");
        Assert.Empty(await s3.UploadsAsync());
    }

    [Fact]
    public async Task StateIsRefusedInOneLineForASetInAFolderOrWithoutDriveAndNothingIsMade()
    {
        using var folder = new TempFolder("bs3drive");
        string set = folder.File("set");

        var local = await Processes.StrataAsync("backup", "create", set, "--drive", "d0", "--state", folder.File("state"));
        var image = await Processes.StrataAsync("backup", "create", "s3://bucket/prefix", "--image", folder.File("disk.img"), "--state", folder.File("state"));

        LiveDrive.AssertOneLineError(local, "--state with a set in a folder");
        Assert.Equal("strata backup: --state goes with an s3:// set: a set in a folder keeps its live-backup state in that folder\n", local.Stderr);
        LiveDrive.AssertOneLineError(image, "--state with --image");
        Assert.Equal("strata backup: --qmp, --state and --freeze go with --drive\n", image.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(folder.Path));
    }

    /// <summary>The number of the point a run made, from its JSON report.</summary>
    private static int Point(ProcessResult made)
    {
        using var report = JsonDocument.Parse(made.Stdout);
        return report.RootElement.GetProperty("point").GetInt32();
    }

    private static string? Fallback(ProcessResult made)
    {
        using var report = JsonDocument.Parse(made.Stdout);
        return report.RootElement.GetProperty("fallback").GetString();
    }

    /// <summary>A live drive (<see cref="Drive"/>) served on a fresh raw disk, with a full point of a few writes made.</summary>
    private static async Task<LiveDrive> WithFullPointAsync(S3Fixture s3, TempFolder folder, bool defaultState)
    {
        var drive = Drive(s3, folder, Workload.NewSeed(), defaultState);
        await drive.StartAsync();
        drive.Write(12);
        Assert.Equal("full", await drive.BackupAsync());
        return drive;
    }

    /// <summary>A live drive whose set is the fixture's bucket, its state in the default folder or in <c>--state</c> under the test's folder.</summary>
    /// <summary>A live drive with its own state folder whose backups reach the store through <paramref name="proxy"/>.</summary>
    private static async Task<LiveDrive> StartBehindAsync(GatewayProxy proxy, S3Fixture s3, TempFolder folder)
    {
        var drive = Drive(s3, folder, Workload.NewSeed(), defaultState: false);
        drive.Environment!["AWS_ENDPOINT_URL"] = proxy.Url;
        try
        {
            await drive.StartAsync();
            return drive;
        }
        catch
        {
            await drive.DisposeAsync();
            throw;
        }
    }

    private static LiveDrive Drive(S3Fixture s3, TempFolder folder, int seed, bool defaultState)
    {
        string state = defaultState ? s3.DefaultDriveState : folder.File("state");
        return new LiveDrive(folder, seed, Size)
        {
            Set = s3.Set, StateFolder = state, Environment = s3.Environment(), ExtraArguments = defaultState ? [] : ["--state", state],
        };
    }
}
