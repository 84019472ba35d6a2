using System.Text.Json;
using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary>
/// A dirty_bitmap file tracked by <c>strata serve --bitmap</c> across a crash or a stop and a
/// restart (docs/bitmaps.md, "Persistence"): the next <c>backup create --image … --bitmap</c> is
/// incremental when its tracking lineage went on, full with the reason when something could have
/// written the image unseen; every point restores the disk the seeded writer's model holds.
/// </summary>
public sealed class BitmapLineageTests
{
    private const long Size = 32L << 20;

    [Fact]
    public async Task ADaemonKilledUnderAWriterAndStartedAgainWithItsBitmapGivesAnIncrementalThatRestoresTheDisk()
    {
        using var folder = new TempFolder("lineage");
        await using var drive = await TrackedWithFullPointAsync(folder);
        await drive.KillDaemonAsync();
        await StartTrackingAsync(drive);
        drive.Write(12);
        await drive.StopDaemonAsync();

        await AssertBackupAsync(drive, "incremental", null);
    }

    [Fact]
    public async Task ACleanStopAndRestartWithTheBitmapGivesAnIncrementalThatRestoresTheDisk()
    {
        using var folder = new TempFolder("lineage");
        await using var drive = await TrackedWithFullPointAsync(folder);
        await drive.StopDaemonAsync();
        await StartTrackingAsync(drive);
        drive.Write(12);
        await drive.StopDaemonAsync();

        await AssertBackupAsync(drive, "incremental", null);
    }

    [Fact]
    public async Task AnImageWrittenByQemuIoBetweenAStopAndARestartGivesAFullPointSayingWhy()
    {
        using var folder = new TempFolder("lineage");
        await using var drive = await TrackedWithFullPointAsync(folder);
        await drive.StopDaemonAsync();
        drive.Write(4, offline: true);
        await StartTrackingAsync(drive);
        drive.Write(12);
        await drive.StopDaemonAsync();

        await AssertBackupAsync(drive, "full", "began a new tracking lineage after point 0 (the image changed while nothing tracked it)");
    }

    [Fact]
    public async Task ARestartWithoutTheBitmapAndItsWritesGiveAFullPointNeverAMissedWrite()
    {
        using var folder = new TempFolder("lineage");
        await using var drive = await TrackedWithFullPointAsync(folder);
        await drive.StopDaemonAsync();
        await drive.StartAsync();
        drive.Write(12);
        await drive.StopDaemonAsync();

        await AssertBackupAsync(drive, "full", $"stopped tracking when its daemon stopped, and since then '{drive.Disk}' was written");
    }

    [Fact]
    public async Task AQcow2DriveWhoseMetadataTheCloseWritesStaysIncrementalAcrossACleanRestart()
    {
        using var folder = new TempFolder("lineage");
        string image = folder.File("disk.qcow2");
        Processes.Ok("qemu-img", "create", "-f", "qcow2", image, $"{Size}");
        await using var drive = await TrackedWithFullPointAsync(folder, image);
        await drive.StopDaemonAsync();
        await StartTrackingAsync(drive, image);
        drive.Write(12);
        await drive.StopDaemonAsync();

        await AssertBackupAsync(drive, "incremental", null, image);
    }

    [Fact]
    public async Task ALiveDriveStoppedAndStartedAgainWithTheSetsBitmapsStaysIncremental()
    {
        using var folder = new TempFolder("lineage");
        await using var drive = await LiveDrive.WithFullPointAndDirtyDataAsync(folder, Size);
        await drive.StopDaemonAsync();
        string[] bitmaps = [.. Directory.GetFiles(Path.Combine(drive.Set, "bitmaps"), "*.dbmp").SelectMany(f => new[] { "--bitmap", $"drive=d0,file={f}" })];
        await drive.StartAsync(null, "raw", bitmaps);
        drive.Write(12);
        string model = await drive.SaveModelAsync("model.img");

        Assert.True(await drive.BackupAsync() == "incremental", $"seed {drive.Seed}");
        drive.AssertLastPointIs(model);
    }

    private static string Bitmap(LiveDrive drive) => drive.Folder.File("t0.dbmp");

    /// <summary>The daemon on <paramref name="image"/> (a qcow2 file; the raw disk by default), tracking into t0.dbmp from its start.</summary>
    private static Task StartTrackingAsync(LiveDrive drive, string? image = null) =>
        drive.StartAsync(image, image is null ? "raw" : "qcow2", "--bitmap", $"drive=d0,file={Bitmap(drive)},name=t0");

    /// <summary>A drive tracked into t0.dbmp from the daemon's start, a full point taken while it tracks, and more writes.</summary>
    private static async Task<LiveDrive> TrackedWithFullPointAsync(TempFolder folder, string? image = null)
    {
        var drive = new LiveDrive(folder, Workload.NewSeed(), Size);
        await StartTrackingAsync(drive, image);
        drive.Write(12);
        var (kind, _) = await ImageBackupAsync(drive, image);
        Assert.True(kind == "full", $"seed {drive.Seed}: the first point is {kind}");
        drive.Write(12);
        return drive;
    }

    private static async Task<(string Kind, string? Fallback)> ImageBackupAsync(LiveDrive drive, string? image = null)
    {
        var made = await Processes.StrataAsync("backup", "create", drive.Set, "--image", image ?? drive.Disk, "--bitmap", Bitmap(drive), "--output=json");
        Assert.True(made.ExitCode == 0, $"seed {drive.Seed}: {made}");
        using var report = JsonDocument.Parse(made.Stdout);
        return (report.RootElement.GetProperty("kind").GetString()!, report.RootElement.GetProperty("fallback").GetString());
    }

    /// <summary>The backup made now has <paramref name="kind"/> (and a fallback containing <paramref name="reason"/>), and restores the disk.</summary>
    private static async Task AssertBackupAsync(LiveDrive drive, string kind, string? reason, string? image = null)
    {
        string model = await drive.SaveModelAsync("model.img");
        var (made, fallback) = await ImageBackupAsync(drive, image);
        Assert.True(made == kind, $"seed {drive.Seed}: a {made} point, {kind} expected ({fallback})");
        if (reason is not null)
        {
            Assert.Contains(reason, fallback, StringComparison.Ordinal);
        }

        drive.AssertLastPointIs(model);
    }
}
