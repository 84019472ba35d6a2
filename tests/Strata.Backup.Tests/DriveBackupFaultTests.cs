using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary>
/// Faults of <c>strata backup create --drive</c> against a real daemon: the backup or the daemon
/// killed part way, a target that fills up, a source that cannot be read. Each time the set keeps
/// only whole points, the drive ends up on its own image again, and the next backup is correct:
/// incremental when the bits were kept (a restored point equals the disk then), full otherwise.
/// </summary>
public sealed class DriveBackupFaultTests
{
    private const long Size = 64 << 20;

    [Fact]
    public async Task ABackupKilledAfterItsSnapshotIsFinishedByTheNextOneWhichMergesTheOverlayBackAndStaysIncremental()
    {
        using var folder = new TempFolder("bfault");
        await using var drive = await LiveDrive.WithFullPointAndDirtyDataAsync(folder, Size);

        await using (var backup = BackgroundProcess.Start(Processes.DotnetHost(), [Processes.StrataDll, .. drive.CreateArguments]))
        {
            await backup.WaitUntilAsync(() => drive.Overlays().Length > 0, "the backup's snapshot overlay");
            await backup.KillAsync();
        }

        Assert.True(drive.Overlays().Length == 1, $"seed {drive.Seed}: the backup ended before it was killed");
        var listed = await Processes.StrataAsync("backup", "list", drive.Set);
        Assert.Contains("did not finish", listed.Stderr, StringComparison.Ordinal);
        drive.Write(12);
        string ab = await drive.SaveModelAsync("ab.img");

        var next = await Processes.StrataAsync(drive.CreateArguments);

        Assert.True(next.ExitCode == 0, $"seed {drive.Seed}: {next}");
        Assert.Contains("merged back", next.Stderr, StringComparison.Ordinal);
        Assert.Equal("incremental", drive.Kind(next));
        Assert.Empty(drive.Overlays());
        Assert.Equal([drive.Disk], await drive.ChainAsync());
        // The writes before the killed backup's snapshot (a) are in this incremental only if their bits were handed back.
        drive.AssertLastPointIs(ab);
        drive.Write(8);
        string abc = await drive.SaveModelAsync("abc.img");
        Assert.Equal("incremental", await drive.BackupAsync());
        drive.AssertLastPointIs(abc);
        Assert.Single(Directory.GetFiles(Path.Combine(drive.Set, "bitmaps"), "*.dbmp"));
        Assert.False(File.Exists(DriveJournal.PathIn(DriveState.Peek(drive.Set, drive.Set))));
    }

    [Fact]
    public async Task ATargetOutOfSpaceFailsTheBackupWithOneLineAndTheNextIncrementalStillHasItsBits()
    {
        using var folder = new TempFolder("bfault");
        await using var drive = await LiveDrive.WithFullPointAndDirtyDataAsync(folder, Size);

        var full = await SmallSetFileSystemAsync(drive, folder);

        LiveDrive.AssertOneLineError(full, $"seed {drive.Seed}: a backup into a full file system");
        Assert.Contains("No space left on device", full.Stderr, StringComparison.Ordinal);
        Assert.Contains("the next one is incremental on point 0", full.Stderr, StringComparison.Ordinal);
        Assert.Single(BackupSet.Open(drive.Set).Points);
        Assert.Empty(drive.Overlays());
        Assert.Equal([drive.Disk], await drive.ChainAsync());
        drive.Write(12);
        string ab = await drive.SaveModelAsync("ab.img");

        Assert.Equal("incremental", await drive.BackupAsync());
        drive.AssertLastPointIs(ab);
    }

    [Fact]
    public async Task TheDaemonKilledDuringTheCopyLeavesOnlyWholePointsAndAfterItsRestartTheNextBackupIsCorrect()
    {
        using var folder = new TempFolder("bfault");
        await using var drive = await LiveDrive.WithFullPointAndDirtyDataAsync(folder, Size);
        string a = await drive.SaveModelAsync("a.img");

        ProcessResult interrupted;
        await using (var backup = BackgroundProcess.Start(Processes.DotnetHost(), [Processes.StrataDll, .. drive.CreateArguments]))
        {
            // The copy of 27 MB and the merge back can end within one poll of WaitUntilAsync: the point's
            // image is looked for every millisecond, and the backup is held still (SIGSTOP) while its
            // daemon dies, so the kill falls during the copy, not after the backup is done.
            string image = Path.Combine(drive.Set, BackupSet.ImageName(1));
            for (int i = 0; i < 30_000 && !File.Exists(image) && !backup.HasExited; i++)
            {
                await Task.Delay(1);
            }

            await backup.WaitUntilAsync(() => File.Exists(image), "the point's image");
            await backup.SignalAsync("STOP");
            await drive.KillDaemonAsync();
            await backup.SignalAsync("CONT");
            int code = await backup.WaitForExitAsync();
            interrupted = new ProcessResult(backup.CommandLine, code, backup.Stdout, backup.Stderr);
        }

        LiveDrive.AssertOneLineError(interrupted, $"seed {drive.Seed}: a backup whose daemon was killed");
        var points = BackupSet.Open(drive.Set).Points;
        Assert.InRange(points.Count, 1, 2);
        Assert.Equal(0, (await Processes.StrataAsync("backup", "verify", drive.Set)).ExitCode);
        if (points.Count == 2)
        {
            drive.AssertLastPointIs(a);
        }

        string overlay = Assert.Single(drive.Overlays());

        // Started again on the image below the overlay, the drive has lost sight of its writes: the backup stops and says what to do.
        await drive.StartAsync();
        var refused = await Processes.StrataAsync(drive.CreateArguments);
        LiveDrive.AssertOneLineError(refused, $"seed {drive.Seed}: a backup of a drive restarted below its overlay");
        Assert.Contains($"file={overlay},format=qcow2", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(points.Count, BackupSet.Open(drive.Set).Points.Count);
        await drive.KillDaemonAsync();

        // As it says: on the overlay, with the bitmaps the set keeps.
        string[] bitmaps = [.. Directory.GetFiles(Path.Combine(drive.Set, "bitmaps"), "*.dbmp").SelectMany(f => new[] { "--bitmap", $"drive=d0,file={f}" })];
        await drive.StartAsync(overlay, "qcow2", bitmaps);
        drive.Write(12);
        string ab = await drive.SaveModelAsync("ab.img");
        await drive.BackupAsync();
        drive.AssertLastPointIs(ab);
        Assert.Empty(drive.Overlays());
        Assert.Equal([drive.Disk], await drive.ChainAsync());

        drive.Write(8);
        string abc = await drive.SaveModelAsync("abc.img");
        Assert.Equal("incremental", await drive.BackupAsync());
        drive.AssertLastPointIs(abc);
    }

    [Fact]
    public async Task ASourceThatCannotBeReadFailsTheBackupWithOneLineAndTheDaemonKeepsServingTheDrive()
    {
        using var folder = new TempFolder("bfault");
        await using var drive = new LiveDrive(folder, Workload.NewSeed(), Size);
        string disk = folder.File("disk.qcow2");
        Processes.Ok("qemu-img", "create", "-f", "qcow2", disk, $"{Size}");
        Processes.Run("qemu-io", "-f", "qcow2", "-c", "write -P 7 0 1M", "-c", "write -P 9 8M 1M", disk).AssertSuccess();
        PointFirstL2EntryPastTheEnd(disk);
        await drive.StartAsync(disk, "qcow2");

        var failed = await Processes.StrataAsync(drive.CreateArguments);

        LiveDrive.AssertOneLineError(failed, "a backup of a corrupt image");
        Assert.Contains("invalid host offset", failed.Stderr, StringComparison.Ordinal);
        Assert.Empty(BackupSet.Open(drive.Set).Points);
        Assert.Empty(Directory.GetFiles(drive.Set, "*.qcow2"));
        Assert.Empty(drive.Overlays());
        Assert.Equal([disk], await drive.ChainAsync());
        Assert.False(drive.Daemon!.HasExited);
        Processes.Run("qemu-io", "-f", "raw", $"nbd+unix:///d0?socket={drive.Nbd}", "-c", "read -P 9 8M 1M", "-c", "write -P 3 9M 64k", "-c", "read -P 3 9M 64k")
            .AssertSuccess();
    }

    /// <summary>
    /// Runs the backup with the set's folder on a 1 MiB tmpfs that only the backup sees (a user and
    /// mount namespace, no root needed): the points, the bitmaps and work folders are bound into it
    /// from the real set, so the daemon and the backup share them, and the new point's image runs
    /// out of space (ENOSPC).
    /// </summary>
    private static async Task<ProcessResult> SmallSetFileSystemAsync(LiveDrive drive, TempFolder folder)
    {
        string real = folder.File("real-set");
        Directory.CreateDirectory(real);
        const string script = """
            set -e
            set_dir=$1 real=$2; shift 2
            mount --bind "$set_dir" "$real"
            mount -t tmpfs -o size=1m tmpfs "$set_dir"
            for entry in "$real"/*; do
              name=$(basename "$entry")
              if [ -d "$entry" ]; then mkdir "$set_dir/$name"; else touch "$set_dir/$name"; fi
              mount --bind "$entry" "$set_dir/$name"
            done
            exec "$@"
            """;
        return await Processes.RunAsync("unshare", ["-rm", "sh", "-c", script, "sh", drive.Set, real, Processes.DotnetHost(), Processes.StrataDll, .. drive.CreateArguments],
            null);
    }

    /// <summary>Makes the first L2 entry of a qcow2 image point 1 TiB in, far past the end of the file (qcow2.txt, "Cluster mapping").</summary>
    private static void PointFirstL2EntryPastTheEnd(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> entry = stackalloc byte[8];
        file.Position = 40;
        file.ReadExactly(entry);
        file.Position = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(entry);
        file.ReadExactly(entry);
        file.Position = (long)(System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(entry) & 0x00fffffffffffe00UL);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(entry, (1UL << 63) | (1UL << 40));
        file.Write(entry);
    }
}
