using System.Text.Json;
using Strata.Block.Bitmaps;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary>
/// Chains made from an image and dirty_bitmap files tracked in this process (the seed's flow without
/// the daemon), checked with QEMU's tools: each point restored by qemu-img equals the image as it
/// was at that point, qemu-img check passes, and verify finds a byte flipped in any image.
/// </summary>
public sealed class BackupChainInteropTests
{
    private const long Size = 32 << 20;
    private const long Granularity = 4096;

    [Fact]
    public async Task EveryPointOfASeededChainRestoresWithQemuImgToTheImageAtThatPoint()
    {
        int seed = Workload.NewSeed();
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, seed, rounds: 3);

        for (int point = 0; point < chain.Set.Points.Count; point++)
        {
            string image = chain.Set.ImagePath(point);
            Assert.True(Processes.Run("qemu-img", "check", "-f", "qcow2", image).ExitCode == 0, $"seed {seed}: qemu-img check of point {point}");
            var compare = Processes.Run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, chain.References[point]);
            Assert.True(compare.ExitCode == 0, $"seed {seed}: point {point} differs from the image at that point:\n{compare}");
        }

        Assert.Equal([BackupKind.Full, BackupKind.Incremental, BackupKind.Incremental, BackupKind.Incremental], chain.Set.Points.Select(p => p.Kind));
        Assert.All(chain.Set.Points.Skip(1), p => Assert.Equal(BackupSet.ImageName(p.Point - 1), p.Backing));
    }

    [Fact]
    public async Task AnIncrementalCopiesOnlyTheBitmapsDirtyExtents()
    {
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, Workload.NewSeed(), rounds: 1);
        var point = chain.Set.Points[1];

        Assert.Equal(chain.DirtyRuns[0], point.Extents);
        Assert.Equal(Path.GetFullPath(folder.File("t0.dbmp")), point.Bitmap!.File);
        Assert.Equal("frozen", point.Bitmap.State);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task VerifyFindsAByteFlippedInAnyImageOfTheChain(int flipped)
    {
        int seed = Workload.NewSeed();
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, seed, rounds: 2);
        Assert.Equal(0, Cli("backup", "verify", chain.Set.Folder).ExitCode);

        long guestOffset = ImageDamage.FlipDataByte(chain.Set.ImagePath(flipped));
        var result = Cli("backup", "verify", "--output=json", chain.Set.Folder);

        Assert.True(result.ExitCode == 2, $"seed {seed}: {result}");
        using var report = JsonDocument.Parse(result.Stdout);
        var bad = report.RootElement.EnumerateArray().First(p => p.GetProperty("point").GetInt32() == flipped);
        Assert.False(bad.GetProperty("ok").GetBoolean());
        Assert.Contains(bad.GetProperty("mismatches").EnumerateArray(),
            m => m.GetProperty("start").GetInt64() <= guestOffset && guestOffset < m.GetProperty("start").GetInt64() + m.GetProperty("length").GetInt64());
    }

    [Fact]
    public async Task RestoreWritesTheDiskOfAPointAsRawOrQcow2()
    {
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, Workload.NewSeed(), rounds: 1);

        Cli("backup", "restore", chain.Set.Folder, "0", folder.File("r0.img")).AssertSuccess();
        Cli("backup", "restore", chain.Set.Folder, folder.File("r1.qcow2"), "-O", "qcow2").AssertSuccess();

        Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "raw", folder.File("r0.img"), chain.References[0]).AssertSuccess();
        Processes.Run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", folder.File("r1.qcow2"), chain.References[1]).AssertSuccess();
        var again = Cli("backup", "restore", chain.Set.Folder, folder.File("r0.img"));
        Assert.Equal(1, again.ExitCode);
        Assert.Single(again.Stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public async Task ABitmapThatWasNotTrackingAtTheLastPointGivesAFullPointAndSaysWhy()
    {
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, Workload.NewSeed(), rounds: 1);
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        await using (var late = await files.CreateAsync(folder.File("late.dbmp"), Size, Granularity))
        {
            await late.BeginTrackingAsync();
            await late.SaveAsync(new DirtyBitmap(Size, Granularity), BitmapStoreState.Frozen);
        }

        var result = await Processes.StrataAsync(["backup", "create", chain.Set.Folder, "--image", folder.File("disk.img"), "--bitmap", folder.File("late.dbmp")]);

        result.AssertSuccess();
        Assert.Contains("full backup instead of incremental: bitmap 'late.dbmp' was not tracking the disk when point 1 was taken", result.Stderr);
        Assert.Equal(BackupKind.Full, BackupSet.Open(chain.Set.Folder).Last!.Kind);
    }

    [Fact]
    public async Task AnIncrementalWhoseBaseImageIsMissingIsRefusedAndTheSetKeepsItsPoints()
    {
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, Workload.NewSeed(), rounds: 1, keepTracking: true);
        File.Delete(chain.Set.ImagePath(1));
        await chain.StopTrackingAsync();

        var result = Cli("backup", "create", chain.Set.Folder, "--image", folder.File("disk.img"), "--bitmap", folder.File("t1.dbmp"));

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("strata backup: the base of an incremental, point 1 (0001.qcow2), is missing from the set: refused", result.Stderr.Trim());
        Assert.Equal(2, BackupSet.Open(chain.Set.Folder).Points.Count);
        Assert.False(File.Exists(chain.Set.ImagePath(2)));
    }

    [Fact]
    public async Task EveryPointsChunkHashesAreWhatAShortScriptComputesFromTheDiskQemuImgRestores()
    {
        int seed = Workload.NewSeed();
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, seed, rounds: 2);

        foreach (var point in chain.Set.Points)
        {
            string raw = folder.File($"restored{point.Point}.raw");
            Processes.Ok("qemu-img", "convert", "-f", "qcow2", "-O", "raw", chain.Set.ImagePath(point.Point), raw);
            Assert.Equal(BackupManifest.CurrentVersion, point.Version);
            Assert.True(point.Chunks.SequenceEqual(IndependentChunkHashes(raw, point.ChunkSize, point.LeafSize!.Value)), $"seed {seed}: point {point.Point}");
            string python = Processes.Ok("python3", "-c", ChunkHashScript, raw, point.ChunkSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
                point.LeafSize!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(point.Chunks, python.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    [Fact]
    public async Task OnlyTheLastPointKeepsALeafFileAndAnIncrementalReadsOnlyTheLeavesItCopied()
    {
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, Workload.NewSeed(), rounds: 2);

        Assert.Equal([LeafDigestFile.Name(2)], Directory.EnumerateFiles(chain.Set.Folder, "*.leaves*").Select(Path.GetFileName));
        var last = chain.Set.Points[2];
        long dirtyLeaves = last.Extents.SelectMany(e => Enumerable.Range((int)(e.Offset / last.LeafSize!.Value),
            (int)(((e.Offset + e.Length + last.LeafSize.Value - 1) / last.LeafSize.Value) - (e.Offset / last.LeafSize.Value)))).Distinct().Count();
        Assert.InRange(chain.Made[2].BytesHashed, 0, dirtyLeaves * last.LeafSize!.Value);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("garbled")]
    public async Task AnIncrementalWhosePreviousLeafFileIsMissingOrGarbledStillRecordsTheRightHashes(string damage)
    {
        int seed = Workload.NewSeed();
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, seed, rounds: 2, beforeRound: round =>
        {
            string leaves = Path.Combine(folder.File("set"), LeafDigestFile.Name(round));
            if (damage == "missing")
            {
                File.Delete(leaves);
            }
            else
            {
                using var file = new FileStream(leaves, FileMode.Open, FileAccess.ReadWrite);
                // Every digest changed, the header and the length kept: the file is taken, and no chunk's leaves agree with the manifest.
                file.Position = 32;
                file.Write(Enumerable.Repeat((byte)0xab, (int)file.Length - 32).ToArray());
            }
        });

        Assert.Equal(0, Cli("backup", "verify", chain.Set.Folder).ExitCode);
        Assert.True(chain.Made[1].ChunksReadWhole > 0, $"seed {seed}: the damaged leaves were used");
    }

    [Fact]
    public async Task AVersionOneChainStillVerifiesFindsAFlippedByteAndItsIncrementalsStayVersionOne()
    {
        int seed = Workload.NewSeed();
        using var folder = new TempFolder("bchain");
        var chain = await BuildChainAsync(folder, seed, rounds: 2, leafSize: 0);

        Assert.All(chain.Set.Points, p => Assert.True(p.Version == 1 && p.LeafSize is null));
        Assert.Empty(Directory.EnumerateFiles(chain.Set.Folder, "*.leaves*"));
        Assert.Contains("\"version\": 1,", File.ReadAllText(Path.Combine(chain.Set.Folder, BackupSet.ManifestName(2))));
        Assert.Equal(0, Cli("backup", "verify", chain.Set.Folder).ExitCode);

        ImageDamage.FlipDataByte(chain.Set.ImagePath(1));
        var result = Cli("backup", "verify", chain.Set.Folder);
        Assert.True(result.ExitCode == 2, $"seed {seed}: {result}");
    }

    /// <summary>The documented chunk hash (docs/backup.md), written again from its words: SHA-256 over the SHA-256 of each leaf.</summary>
    private static List<string> IndependentChunkHashes(string raw, int chunkSize, int leafSize)
    {
        byte[] disk = File.ReadAllBytes(raw);
        var result = new List<string>();
        for (int chunk = 0; chunk < disk.Length; chunk += chunkSize)
        {
            var digests = new List<byte>();
            for (int leaf = chunk; leaf < Math.Min(disk.Length, chunk + chunkSize); leaf += leafSize)
            {
                digests.AddRange(System.Security.Cryptography.SHA256.HashData(disk.AsSpan(leaf, Math.Min(leafSize, disk.Length - leaf))));
            }

            result.Add(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData([.. digests])));
        }

        return result;
    }

    /// <summary>The script docs/backup.md gives for checking a restored disk without Strata.</summary>
    private const string ChunkHashScript = """
        import hashlib, sys
        disk, chunk_size, leaf_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        with open(disk, 'rb') as f:
            while chunk := f.read(chunk_size):
                leaves = b''.join(hashlib.sha256(chunk[i:i + leaf_size]).digest() for i in range(0, len(chunk), leaf_size))
                print(hashlib.sha256(leaves).hexdigest())
        """;

    private static ProcessResult Cli(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        // Off the test's synchronization context: the command blocks on its own async work.
        int code = Task.Run(() => Strata.Cli.Program.Run(args, output, error)).GetAwaiter().GetResult();
        return new ProcessResult($"strata {string.Join(' ', args)} (in process)", code, output.ToString(), error.ToString());
    }


    /// <summary>
    /// A raw disk (1 MiB of data at 1 MiB) with bitmap t0 tracking from point 0 (a full backup); then per round seeded writes
    /// (marked in the round's bitmap), the next bitmap begun, the round's bitmap saved Frozen (the
    /// seed's switch), a copy of the disk kept, and an incremental backup with the round's bitmap.
    /// </summary>
    /// <param name="leafSize">The request's leaf size: 0 makes a version 1 chain, as sets made before leaves.</param>
    /// <param name="beforeRound">Runs before each round's incremental, with the round's number.</param>
    private static async Task<Chain> BuildChainAsync(TempFolder folder, int seed, int rounds, bool keepTracking = false,
        int leafSize = BackupManifest.DefaultLeafSize, Action<int>? beforeRound = null)
    {
        string disk = folder.File("disk.img");
        Processes.Ok("qemu-img", "create", "-f", "raw", disk, Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        var chain = new Chain(folder.File("set"), leafSize);
        var tracker = await files.CreateAsync(folder.File("t0.dbmp"), Size, Granularity);
        await tracker.BeginTrackingAsync();
        var bits = new DirtyBitmap(Size, Granularity);
        chain.Tracker = tracker;
        chain.Bits = bits;
        QemuIo.Ok(disk, "raw", "write -P 0x5a 1M 1M");
        await chain.BackupAsync(disk, null, folder.File("ref0.img"));
        for (int round = 0; round < rounds; round++)
        {
            await using (var node = await ImageOpener.OpenAsync(disk, new ImageOpenOptions { Format = "raw", ReadOnly = false }))
            {
                foreach (var op in Workload.Generate(seed + round, Size, 40))
                {
                    await op.ApplyAsync(node);
                    if (op.Kind != DiskOpKind.Flush)
                    {
                        bits.Set(op.Offset, op.Length);
                    }
                }
            }

            var next = await files.CreateAsync(folder.File($"t{round + 1}.dbmp"), Size, Granularity);
            await next.BeginTrackingAsync();
            await tracker.SaveAsync(bits, BitmapStoreState.Frozen);
            await tracker.DisposeAsync();
            chain.DirtyRuns.Add([.. bits.DirtyRuns().Select(r => new BackupExtent(r.Offset, r.Length))]);
            (tracker, bits) = (next, new DirtyBitmap(Size, Granularity));
            chain.Tracker = tracker;
            chain.Bits = bits;
            beforeRound?.Invoke(round);
            var made = await chain.BackupAsync(disk, folder.File($"t{round}.dbmp"), folder.File($"ref{round + 1}.img"));
            Assert.True(made.Kind == BackupKind.Incremental, $"seed {seed}: round {round}: {made.Fallback}");
        }

        if (!keepTracking)
        {
            await chain.StopTrackingAsync();
        }

        return chain;
    }

    private sealed class Chain(string folder, int leafSize)
    {
        public string Folder { get; } = folder;

        public BackupSet Set { get; private set; } = null!;

        public List<string> References { get; } = [];

        public List<BackupResult> Made { get; } = [];

        public List<List<BackupExtent>> DirtyRuns { get; } = [];

        public IBitmapStore? Tracker { get; set; }

        public DirtyBitmap? Bits { get; set; }

        public async Task<BackupManifest> BackupAsync(string disk, string? bitmap, string reference)
        {
            File.Copy(disk, reference);
            References.Add(reference);
            var result = await BackupWriter.CreateAsync(Folder, new BackupRequest { Image = disk, Bitmap = bitmap, LeafSize = leafSize });
            Set = result.Set;
            Made.Add(result);
            return result.Manifest;
        }

        public async Task StopTrackingAsync()
        {
            if (Tracker is not null)
            {
                await Tracker.SaveAsync(Bits!, BitmapStoreState.Frozen);
                await Tracker.DisposeAsync();
                Tracker = null;
            }
        }
    }
}
