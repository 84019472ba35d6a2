using System.Text.Json;
using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary>
/// A drive served by a real <c>strata serve</c>, written through NBD by a seeded random writer kept
/// in a model, and backed up with <c>strata backup create --drive</c>: what the live fault tests share.
/// The set is a folder by default; <see cref="Set"/>, <see cref="Environment"/> and <see cref="StateFolder"/>
/// put it in an object store.
/// </summary>
internal sealed class LiveDrive : IAsyncDisposable
{
    private readonly Random _random;
    private readonly byte[] _model;

    public LiveDrive(TempFolder folder, int seed, long size)
    {
        Folder = folder;
        Seed = seed;
        Size = size;
        _random = new Random(seed);
        _model = new byte[size];
        Disk = folder.File("disk.img");
        Set = folder.File("set");
        StateFolder = Set;
        Processes.Ok("qemu-img", "create", "-f", "raw", Disk, $"{size}");
    }

    public TempFolder Folder { get; }

    public int Seed { get; }

    public long Size { get; }

    public string Disk { get; }

    /// <summary>The set as <c>backup create</c> is given it: a folder (the default) or s3://BUCKET/PREFIX.</summary>
    public string Set { get; init; }

    /// <summary>Where the managed bitmaps, the overlay and the journal are: the set's folder, or a set in a store's state folder.</summary>
    public string StateFolder { get; init; }

    /// <summary>More arguments of every <c>backup create</c> (<c>--state DIR</c>).</summary>
    public string[] ExtraArguments { get; set; } = [];

    /// <summary>The environment of the strata commands (a store's settings); null: the test's own.</summary>
    public Dictionary<string, string?>? Environment { get; init; }

    public ProcessOptions Options => new() { Environment = Environment, Timeout = TimeSpan.FromMinutes(3) };

    public string Qmp => Folder.File("qmp.sock");

    public string Nbd => Folder.File("nbd.sock");

    public BackgroundProcess? Daemon { get; private set; }

    public string[] CreateArguments => ["backup", "create", Set, "--drive", "d0", "--qmp", Qmp, .. ExtraArguments, "--output=json"];

    /// <summary>
    /// A drive served on a fresh disk, with a full point made of a few writes, then tens of MiB more
    /// written: a backup started now has a copy long enough to be interrupted in.
    /// </summary>
    public static async Task<LiveDrive> WithFullPointAndDirtyDataAsync(TempFolder folder, long size)
    {
        var drive = new LiveDrive(folder, Workload.NewSeed(), size);
        await drive.StartAsync();
        drive.Write(12);
        Assert.Equal("full", await drive.BackupAsync());
        drive.Write(48, maxBlocks: 256);
        return drive;
    }

    /// <summary>Starts the daemon with the drive on <paramref name="image"/> (the disk by default), with <paramref name="extra"/> arguments.</summary>
    public async Task StartAsync(string? image = null, string format = "raw", params string[] extra)
    {
        File.Delete(Qmp);
        File.Delete(Nbd);
        Daemon = ServeProcess.Start(Folder.Path, null,
            ["--drive", $"id=d0,file={image ?? Disk},format={format}", "--nbd", $"unix:{Nbd}", "--qmp", $"unix:{Qmp}", .. extra]);
        await Daemon.WaitForFileAsync(Qmp);
        await Daemon.WaitForFileAsync(Nbd);
    }

    /// <summary>SIGKILL to the daemon: a crash, nothing flushed or saved.</summary>
    public async Task KillDaemonAsync()
    {
        await Daemon!.KillAsync();
        await Daemon.DisposeAsync();
        Daemon = null;
    }

    /// <summary>SIGTERM to the daemon: a clean stop (every image flushed and closed, every bitmap saved), awaited.</summary>
    public async Task StopDaemonAsync()
    {
        await Daemon!.SignalAsync("TERM");
        int code = await Daemon.WaitForExitAsync();
        Assert.True(code == 0, $"seed {Seed}: the daemon stopped with {code}: {Daemon}");
        await Daemon.DisposeAsync();
        Daemon = null;
    }

    /// <summary>
    /// Seeded random writes and write-zeroes, <paramref name="count"/> of them, kept in the model:
    /// through NBD, or with <paramref name="offline"/> by qemu-io on the image file itself (no daemon runs).
    /// </summary>
    public void Write(int count, int maxBlocks = 64, bool offline = false)
    {
        var commands = new List<string>();
        for (int i = 0; i < count; i++)
        {
            int length = _random.Next(1, maxBlocks) * 4096;
            long offset = _random.NextInt64(0, (Size - length) / 512) * 512;
            byte pattern = (byte)_random.Next(1, 256);
            bool zero = _random.Next(5) == 0;
            commands.Add(zero ? $"write -z {offset} {length}" : $"write -P {pattern} {offset} {length}");
            _model.AsSpan((int)offset, length).Fill(zero ? (byte)0 : pattern);
        }

        Processes.Run("qemu-io", ["-f", "raw", offline ? Disk : $"nbd+unix:///d0?socket={Nbd}", .. commands.SelectMany(c => new[] { "-c", c })]).AssertSuccess();
    }

    /// <summary>Fills <paramref name="length"/> bytes at <paramref name="offset"/> with <paramref name="pattern"/> through NBD, kept in the model: a point of a known size.</summary>
    public void Fill(long offset, int length, byte pattern)
    {
        Processes.Run("qemu-io", "-f", "raw", $"nbd+unix:///d0?socket={Nbd}", "-c", $"write -P {pattern} {offset} {length}").AssertSuccess();
        _model.AsSpan((int)offset, length).Fill(pattern);
    }

    /// <summary>The disk as the model holds it now, as a raw file named <paramref name="name"/>.</summary>
    public async Task<string> SaveModelAsync(string name)
    {
        string path = Folder.File(name);
        await File.WriteAllBytesAsync(path, _model);
        return path;
    }

    /// <summary>A backup that must succeed; returns its kind (full or incremental).</summary>
    public async Task<string> BackupAsync() => Kind(await CreateAsync());

    /// <summary>A backup create, as it ended.</summary>
    public Task<ProcessResult> CreateAsync() => Processes.StrataAsync(CreateArguments, Options);

    /// <summary>The kind of point a backup that must have succeeded made (full or incremental).</summary>
    public string Kind(ProcessResult made)
    {
        Assert.True(made.ExitCode == 0, $"seed {Seed}: {made}");
        using var report = JsonDocument.Parse(made.Stdout);
        return report.RootElement.GetProperty("kind").GetString()!;
    }

    /// <summary>The set's last point equals <paramref name="model"/> (qemu-img check and compare), and verify passes on every point.</summary>
    public void AssertLastPointIs(string model)
    {
        var set = BackupSet.Open(Set);
        string image = set.ImagePath(set.Points.Count - 1);
        Processes.Run("qemu-img", "check", "-f", "qcow2", image).AssertSuccess();
        var compare = Processes.Run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, model);
        Assert.True(compare.ExitCode == 0, $"seed {Seed}: the last point differs from the disk:\n{compare}");
        var verify = Processes.Strata("backup", "verify", Set);
        Assert.True(verify.ExitCode == 0, $"seed {Seed}: {verify}");
        string restored = Folder.File($"restored{set.Points.Count - 1}.img");
        Processes.Strata("backup", "restore", Set, restored).AssertSuccess();
        Assert.Equal(0, Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "raw", restored, model).ExitCode);
    }

    /// <summary>The drive's image chain as the daemon reports it, top first.</summary>
    public async Task<List<string>> ChainAsync()
    {
        await using var qmp = await QmpClient.ConnectAsync(Qmp);
        var drives = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        var chain = new List<string>();
        for (var image = drives.OfType<JsonObject>().Single(d => d["device"]?.GetValue<string>() == "d0")["inserted"]?["image"]; image is not null; image = image["backing-image"])
        {
            chain.Add(image["filename"]!.GetValue<string>());
        }

        return chain;
    }

    /// <summary>Overlays left in the state's work folder (SET/work).</summary>
    public string[] Overlays() => Directory.Exists(Path.Combine(StateFolder, "work")) ? Directory.GetFiles(Path.Combine(StateFolder, "work"), "*.qcow2") : [];

    /// <summary>One line on stderr, no stack trace.</summary>
    public static void AssertOneLineError(ProcessResult result, string because)
    {
        Assert.True(result.ExitCode == 1, $"{because}: {result}");
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("strata backup: ", result.Stderr, StringComparison.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        if (Daemon is not null)
        {
            await Daemon.DisposeAsync();
        }
    }
}
