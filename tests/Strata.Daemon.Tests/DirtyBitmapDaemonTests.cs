using System.Text;
using System.Text.Json.Nodes;
using Strata.Block.Bitmaps;
using Strata.Cli.Monitor;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Daemon.Tests;

public sealed class DirtyBitmapDaemonTests(ITestOutputHelper output)
{
    private const long Size = 8 << 20;
    private static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task TheSeedsTrackingFlowMarksInEachBitmapExactlyTheWritesOfItsTime()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var files = new MemoryBitmapFiles();
        await using var d = await LiveDaemon.StartAsync(o => o with { BitmapFiles = files, StartPaused = true }, Size);
        string t0File = d.Folder.File("t0.dbmp"), t1File = d.Folder.File("t1.dbmp");
        await (await files.CreateAsync(t0File, Size, 4096)).DisposeAsync();
        await using var qmp = await d.ConnectQmpAsync();
        var console = new ConsoleLines(qmp);
        var t0 = new DirtyBitmap(Size, 4096);
        var t1 = new DirtyBitmap(Size, DriveBitmaps.DefaultGranularity);

        await console.RunAsync($"set_dirty {LiveDaemon.DriveId} {t0File}");
        await console.RunAsync("cont");
        await using var guest = await d.ConnectNbdAsync();
        await GuestAsync(guest, random, 40, t0);
        await console.RunAsync($"set_dirty {LiveDaemon.DriveId} {t1File}");
        await GuestAsync(guest, random, 40, t0, t1);
        await console.RunAsync($"change -l {LiveDaemon.DriveId} file={d.Folder.File("tmp.img")}");
        await GuestAsync(guest, random, 40, t1);
        await AssertShaAsync(qmp, "t0", t0, seed);
        await AssertShaAsync(qmp, "t1", t1, seed);
        Assert.Equal(BitmapStoreState.Frozen, files[t0File].State);
        Assert.True(t0.Sha256() == files[t0File].Bits().Sha256(), $"seed {seed}: t0.dbmp does not hold the frozen image's writes");

        var merging = console.RunAsync($"merge_disk {d.Folder.File("tmp.img")}");
        await GuestAsync(guest, random, 40, t1);
        await merging;
        await GuestAsync(guest, random, 20, t1);
        await AssertShaAsync(qmp, "t0", t0, seed);
        await AssertShaAsync(qmp, "t1", t1, seed);
        Assert.Contains("(bitmap t1)", console.Output);

        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray()[0]!["inserted"]!;
        Assert.Equal(d.BaseImage, block["file"]!.GetValue<string>());
        await d.Daemon.StopAsync();
        Assert.Equal(BitmapStoreState.Consistent, files[t1File].State);
        Assert.True(t1.Sha256() == files[t1File].Bits().Sha256(), $"seed {seed}: t1.dbmp was not saved with every write");
    }

    [Fact]
    public async Task QueryBlockAndInfoBlockListEachDrivesBitmaps()
    {
        var files = new MemoryBitmapFiles();
        await using var d = await LiveDaemon.StartAsync(o => o with { BitmapFiles = files }, Size);
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0", ["granularity"] = 4096 });
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject
        {
            ["node"] = d.BaseImage, ["name"] = "f", ["file"] = d.Folder.File("f.dbmp"), ["disabled"] = true,
        });
        await using (var guest = await d.ConnectNbdAsync())
        {
            await guest.WriteAsync(0, new byte[100]);
        }

        var bitmaps = (await qmp.ExecuteAsync("query-block"))!.AsArray()[0]!["inserted"]!["dirty-bitmaps"]!.AsArray();
        var console = new ConsoleLines(qmp);
        await console.RunAsync("info block");

        Assert.Equal(2, bitmaps.Count);
        var b0 = bitmaps[0]!;
        Assert.Equal(("b0", 4096L, 4096L, true, false, false, false), (b0["name"]!.GetValue<string>(), b0["count"]!.GetValue<long>(),
            b0["granularity"]!.GetValue<long>(), b0["recording"]!.GetValue<bool>(), b0["persistent"]!.GetValue<bool>(),
            b0["busy"]!.GetValue<bool>(), b0["inconsistent"]!.GetValue<bool>()));
        Assert.Equal((false, true, 0L), (bitmaps[1]!["recording"]!.GetValue<bool>(), bitmaps[1]!["persistent"]!.GetValue<bool>(), bitmaps[1]!["count"]!.GetValue<long>()));
        Assert.Contains("Dirty bitmap:     b0 (recording, granularity 4096, 4096 bytes dirty)", console.Output);
        Assert.Contains($"Dirty bitmap:     f (stopped, granularity 65536, 0 bytes dirty, in {d.Folder.File("f.dbmp")})", console.Output);
    }

    [Theory]
    [InlineData("""{"node": "nowhere", "name": "b"}""", "DeviceNotFound", "Cannot find device='nowhere' nor node-name='nowhere'")]
    [InlineData("""{"node": "ide0-hd0", "name": "b", "persistent": true}""", "GenericError", "Cannot store persistent bitmaps in a raw image")]
    [InlineData("""{"node": "ide0-hd0", "name": "b", "granularity": 100}""", "GenericError", "Granularity must be power of 2, and at least 512")]
    [InlineData("""{"node": "ide0-hd0", "name": "", "granularity": 4096}""", "GenericError", "Bitmap name cannot be empty")]
    [InlineData("""{"node": "ide0-hd0", "name": "b", "colour": "red"}""", "GenericError", "Parameter 'colour' is unexpected")]
    public async Task ABadBitmapAddIsRefusedWithQemusClassAndWords(string arguments, string errorClass, string message)
    {
        await using var d = await LiveDaemon.StartAsync(o => o, Size);
        await using var qmp = await d.ConnectQmpAsync();
        var reply = await qmp.SendAsync(new JsonObject { ["execute"] = "block-dirty-bitmap-add", ["arguments"] = JsonNode.Parse(arguments) });

        Assert.Equal(errorClass, reply["error"]?["class"]?.GetValue<string>());
        Assert.StartsWith(message, reply["error"]!["desc"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheAtomicHandOffIsOneTransactionOfBitmapAddDisableAndSnapshot()
    {
        var files = new MemoryBitmapFiles();
        await using var d = await LiveDaemon.StartAsync(o => o with { BitmapFiles = files }, Size);
        await using var qmp = await d.ConnectQmpAsync();
        await using var guest = await d.ConnectNbdAsync();
        string t0File = d.Folder.File("t0.dbmp"), t1File = d.Folder.File("t1.dbmp");
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0", ["file"] = t0File });
        await guest.WriteAsync(0, new byte[512]);

        await qmp.ExecuteAsync("transaction", new JsonObject
        {
            ["actions"] = new JsonArray
            {
                Action("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t1", ["file"] = t1File }),
                Action("block-dirty-bitmap-disable", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0" }),
                Action("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img") }),
            },
        });
        await guest.WriteAsync(1 << 20, new byte[512]);

        Assert.Equal(BitmapStoreState.Frozen, files[t0File].State);
        Assert.Equal([(0L, 65536L)], files[t0File].Bits().DirtyRuns());
        var sha = await qmp.ExecuteAsync("x-debug-block-dirty-bitmap-sha256", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t1" });
        var expected = new DirtyBitmap(Size, 65536);
        expected.Set(1 << 20, 512);
        Assert.Equal(expected.Sha256(), sha!["sha256"]!.GetValue<string>());
    }

    /// <summary>
    /// The hand-off of the issue's workflow under a writer that keeps going: seeded writes, four at a
    /// time, each into a 16 KiB slot of its own with random data, race one transaction of t1 add, t0
    /// disable and a snapshot. Each write then reached either the frozen image (and is in t0, not in
    /// t1) or the overlay (in t1, not in t0); one finished before the transaction was sent reached
    /// the frozen image, one begun after its reply the overlay; and t0 marks exactly the granules in
    /// which the frozen image differs from the image before tracking.
    /// </summary>
    [Fact]
    public async Task UnderARacingWriterEveryWriteIsOnExactlyTheSideOfTheSwitchItReached()
    {
        const long Disk = 64 << 20;
        const int Slot = 16 << 10, Granule = 4096, Reserved = 8, Writers = 4;
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var files = new MemoryBitmapFiles();
        await using var d = await LiveDaemon.StartAsync(o => o with { BitmapFiles = files }, Disk);
        await using var qmp = await d.ConnectQmpAsync();
        await using var guest = await d.ConnectNbdAsync();
        byte[] before = await File.ReadAllBytesAsync(d.BaseImage);
        string t0File = d.Folder.File("t0.dbmp"), t1File = d.Folder.File("t1.dbmp");
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0", ["granularity"] = Granule, ["file"] = t0File });

        int slots = (int)(Disk / Slot);
        var writes = Enumerable.Range(0, slots).OrderBy(_ => random.Next()).Select(slot =>
        {
            int start = random.Next(Slot / Granule), length = random.Next(1, Slot / Granule - start + 1);
            var data = new byte[length * Granule];
            random.NextBytes(data);
            return new RacingWrite((long)slot * Slot + (long)start * Granule, data);
        }).ToArray();
        int next = 0, completed = 0, phase = 0, stopAt = int.MaxValue;
        var enoughBefore = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task WriterAsync()
        {
            while (Volatile.Read(ref completed) < Volatile.Read(ref stopAt))
            {
                int i = Interlocked.Increment(ref next) - 1;
                if (i >= slots - Reserved)
                {
                    break;
                }

                writes[i].IssuedIn = Volatile.Read(ref phase);
                await guest.WriteAsync(writes[i].Offset, writes[i].Data);
                writes[i].CompletedIn = Volatile.Read(ref phase);
                if (Interlocked.Increment(ref completed) == 256)
                {
                    enoughBefore.TrySetResult();
                }
            }
        }

        var writers = Enumerable.Range(0, Writers).Select(_ => Task.Run(WriterAsync)).ToArray();
        await Task.WhenAny(enoughBefore.Task, Task.WhenAll(writers));
        Volatile.Write(ref phase, 1);
        await qmp.ExecuteAsync("transaction", new JsonObject
        {
            ["actions"] = new JsonArray
            {
                Action("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t1", ["granularity"] = Granule, ["file"] = t1File }),
                Action("block-dirty-bitmap-disable", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0" }),
                Action("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img") }),
            },
        });
        Volatile.Write(ref phase, 2);
        Volatile.Write(ref stopAt, Volatile.Read(ref completed) + 256);
        await Task.WhenAll(writers);
        for (int i = slots - Reserved; i < slots; i++)
        {
            writes[i].IssuedIn = 2;
            await guest.WriteAsync(writes[i].Offset, writes[i].Data);
            writes[i].CompletedIn = 2;
        }

        var t0 = d.Daemon.Drives[0].Bitmaps.Find("t0")!.Bits;
        var t1 = d.Daemon.Drives[0].Bitmaps.Find("t1")!.Bits;
        Assert.Equal(BitmapStoreState.Frozen, files[t0File].State);
        Assert.True(t0.Sha256() == files[t0File].Bits().Sha256(), $"seed {seed}: t0.dbmp does not hold t0");
        byte[] frozen = await File.ReadAllBytesAsync(d.BaseImage);
        int inFrozen = 0, inOverlay = 0, raced = 0;
        foreach (var w in writes.Where(w => w.CompletedIn >= 0))
        {
            var range = new Range((int)w.Offset, (int)w.Offset + w.Data.Length);
            var read = new byte[w.Data.Length];
            await guest.ReadAsync(w.Offset, read);
            Assert.True(read.AsSpan().SequenceEqual(w.Data), $"seed {seed}: the disk lost the write at {w.Offset}");
            bool frozenHasIt = frozen.AsSpan(range).SequenceEqual(w.Data);
            string what = $"seed {seed}: the write at {w.Offset} of {w.Data.Length} (issued in phase {w.IssuedIn}, done in {w.CompletedIn})";
            Assert.True(frozenHasIt || frozen.AsSpan(range).SequenceEqual(before.AsSpan(range)), $"{what} is partly in the frozen image");
            Assert.True(AllDirty(frozenHasIt ? t0 : t1, w), $"{what} reached the {(frozenHasIt ? "frozen image" : "overlay")} but is not in {(frozenHasIt ? "t0" : "t1")}");
            Assert.True(NoneDirty(frozenHasIt ? t1 : t0, w), $"{what} is in both t0 and t1");
            Assert.False(w.CompletedIn == 0 && !frozenHasIt, $"{what} finished before the transaction but is not in the frozen image");
            Assert.False(w.IssuedIn == 2 && frozenHasIt, $"{what} began after the transaction but is in the frozen image");
            inFrozen += frozenHasIt ? 1 : 0;
            inOverlay += frozenHasIt ? 0 : 1;
            raced += w.IssuedIn < 2 && w.CompletedIn > 0 ? 1 : 0;
        }

        for (long offset = 0; offset < Disk; offset += Granule)
        {
            var granule = new Range((int)offset, (int)offset + Granule);
            bool differs = !frozen.AsSpan(granule).SequenceEqual(before.AsSpan(granule));
            Assert.True(differs == t0.IsDirty(offset), $"seed {seed}: at {offset} the frozen image {(differs ? "differs" : "does not differ")} from before tracking, but t0 says {t0.IsDirty(offset)}");
        }

        Assert.True(inFrozen >= 256 && inOverlay >= Reserved, $"seed {seed}: {inFrozen} writes in the frozen image, {inOverlay} in the overlay");
        output.WriteLine($"seed {seed}: {inFrozen} writes reached the frozen image, {inOverlay} the overlay, {raced} were in flight across the transaction");
    }

    private static bool AllDirty(DirtyBitmap bits, RacingWrite w)
        => bits.GetRun(w.Offset, w.Data.Length) is (true, var length) && length == w.Data.Length;

    private static bool NoneDirty(DirtyBitmap bits, RacingWrite w)
        => bits.GetRun(w.Offset, w.Data.Length) is (false, var length) && length == w.Data.Length;

    /// <summary>One write of the racing writer; the phases are -1 until set (0 before the transaction was sent, 1 while it ran, 2 after its reply).</summary>
    private sealed class RacingWrite(long offset, byte[] data)
    {
        public long Offset { get; } = offset;

        public byte[] Data { get; } = data;

        public int IssuedIn { get; set; } = -1;

        public int CompletedIn { get; set; } = -1;
    }

    [Fact]
    public async Task ATransactionWhoseBitmapActionFailsMakesNoOverlayAndChangesNoBitmap()
    {
        var files = new MemoryBitmapFiles();
        await using var d = await LiveDaemon.StartAsync(o => o with { BitmapFiles = files }, Size);
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0" });

        var reply = await qmp.SendAsync(new JsonObject
        {
            ["execute"] = "transaction",
            ["arguments"] = new JsonObject
            {
                ["actions"] = new JsonArray
                {
                    Action("block-dirty-bitmap-disable", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0" }),
                    Action("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img") }),
                    Action("block-dirty-bitmap-clear", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "missing" }),
                },
            },
        });

        Assert.Equal("Dirty bitmap 'missing' not found", reply["error"]?["desc"]?.GetValue<string>());
        Assert.False(File.Exists(d.Folder.File("tmp.img")));
        var bitmaps = (await qmp.ExecuteAsync("query-block"))!.AsArray()[0]!["inserted"]!["dirty-bitmaps"]!.AsArray();
        Assert.True(bitmaps[0]!["recording"]!.GetValue<bool>());
    }

    [Fact]
    public async Task TransactionTakesQemusPropertiesAndAnswersThemAsQsdDoes()
    {
        await using var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        string qsdImage = d.Folder.File("qsd.img"), qsdSocket = d.Folder.File("q.sock");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", qsdImage, Size.ToString()).AssertSuccess();
        await using var qsd = await Qsd.StartAsync(qsdSocket, d.Folder.File("q.qmp"), [
            "--blockdev", $"driver=file,node-name=file0,filename={qsdImage}",
            "--blockdev", "driver=raw,node-name=fmt0,file=file0",
            "--nbd-server", $"addr.type=unix,addr.path={qsdSocket}"]);
        await using var oracle = await qsd.ConnectQmpAsync();

        JsonObject Transaction(string node, string name, JsonObject properties) => new()
        {
            ["execute"] = "transaction",
            ["arguments"] = new JsonObject
            {
                ["actions"] = new JsonArray { Action("block-dirty-bitmap-add", new JsonObject { ["node"] = node, ["name"] = name }) },
                ["properties"] = properties,
            },
        };

        var cases = new (string Name, Func<JsonObject> Properties, bool Succeeds)[]
        {
            ("g", () => new JsonObject { ["completion-mode"] = "grouped" }, false),
            ("s", () => new JsonObject { ["completion-mode"] = "sometimes" }, false),
            ("x", () => new JsonObject { ["completion-mode"] = "individual", ["extra"] = 1 }, false),
            ("n", () => new JsonObject { ["completion-mode"] = 3 }, false),
            ("i", () => new JsonObject { ["completion-mode"] = "individual" }, true),
            ("e", () => new JsonObject(), true),
        };
        foreach (var (name, properties, succeeds) in cases)
        {
            var ours = await qmp.SendAsync(Transaction(LiveDaemon.DriveId, name, properties()));
            var theirs = await oracle.SendAsync(Transaction("fmt0", name, properties()));
            Assert.True(succeeds == ours["return"] is not null, $"{name}: {ours.ToJsonString()}");
            Assert.True(succeeds == theirs["return"] is not null, $"{name}: qsd answered {theirs.ToJsonString()}");
            Assert.Equal(theirs["error"]?["class"]?.GetValue<string>(), ours["error"]?["class"]?.GetValue<string>());
            Assert.Equal(theirs["error"]?["desc"]?.GetValue<string>(), ours["error"]?["desc"]?.GetValue<string>());
            Assert.Equal(succeeds, d.Daemon.Drives[0].Bitmaps.Find(name) is not null);
        }
    }

    [Fact]
    public async Task ABitmapFileNamedOnTheCommandLineGoesOnTrackingAcrossARestart()
    {
        var files = new MemoryBitmapFiles();
        using var folder = new TempFolder();
        string image = folder.File("disk.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, Size.ToString()).AssertSuccess();
        string bitmapFile = folder.File("t0.dbmp");
        var options = new DaemonOptions
        {
            Drives = [new DriveSpec(LiveDaemon.DriveId, image, "raw")],
            Bitmaps = [BitmapSpec.Parse($"drive={LiveDaemon.DriveId},file={bitmapFile}")],
            BitmapFiles = files,
            NbdEndpoints = [Nbd.Transport.NbdEndpoint.Unix(folder.File("nbd.sock"))],
        };

        await using (var first = new StorageDaemon(options))
        {
            await first.StartAsync();
            await first.Drives[0].Gate.WriteAsync(0, new byte[512]);
        }

        Assert.Equal(BitmapStoreState.Consistent, files[bitmapFile].State);
        await using var second = new StorageDaemon(options);
        await second.StartAsync();
        await second.Drives[0].Gate.WriteAsync(1 << 20, new byte[512]);

        var t0 = second.Drives[0].Bitmaps.Find("t0")!;
        Assert.True(t0.Recording);
        Assert.Equal([(0L, 65536L), (1L << 20, 65536L)], t0.Bits.DirtyRuns());
    }

    [Theory]
    [InlineData("drive=d", "drive=ID and file=PATH are required")]
    [InlineData("drive=d,file=x.dbmp,size=1", "unknown key 'size'")]
    public void ABadBitmapOptionIsOneClearLine(string text, string message)
    {
        var e = Assert.Throws<FormatException>(() => BitmapSpec.Parse(text));
        Assert.Contains(message, e.Message);
    }

    private static JsonObject Action(string type, JsonObject data) => new() { ["type"] = type, ["data"] = data };

    /// <summary>Seeded guest writes, write-zeroes and discards, each marked in every model given.</summary>
    private static async Task GuestAsync(NbdClient guest, Random random, int count, params DirtyBitmap[] models)
    {
        for (int i = 0; i < count; i++)
        {
            uint length = (uint)random.Next(1, 64 << 10);
            long offset = random.NextInt64(0, Size - length);
            switch (random.Next(4))
            {
                case 0:
                    await guest.WriteZeroesAsync(offset, length);
                    break;
                case 1:
                    await guest.TrimAsync(offset, length);
                    break;
                default:
                    await guest.WriteAsync(offset, new byte[length]);
                    break;
            }

            foreach (var model in models)
            {
                model.Set(offset, length);
            }
        }
    }

    private static async Task AssertShaAsync(QmpClient qmp, string name, DirtyBitmap model, int seed)
    {
        var reply = await qmp.ExecuteAsync("x-debug-block-dirty-bitmap-sha256", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = name });
        Assert.True(model.Sha256() == reply!["sha256"]!.GetValue<string>(), $"seed {seed}: bitmap {name} differs from its model");
    }

    /// <summary>The (strata) console over the test's control connection; a failed line fails the test with what it printed.</summary>
    private sealed class ConsoleLines(QmpClient qmp)
    {
        private readonly StringBuilder _output = new();
        private readonly StringBuilder _error = new();

        public string Output => _output.ToString();

        public async Task RunAsync(string line)
        {
            using var output = new StringWriter(_output);
            using var error = new StringWriter(_error);
            var console = new MonitorConsole(qmp, output, error, interactive: false);
            Assert.True(await console.RunLineAsync(line, () => { }), $"'{line}' failed: {_error}");
        }
    }
}
