using System.Buffers.Binary;
using System.Security.Cryptography;
using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>
/// A dirty_bitmap file's tracking lineage (docs/formats/dirty-bitmap.md, "Lineage"): which begins
/// keep it and which start a new one, what a close records, and old or hostile headers.
/// </summary>
public sealed class DirtyBitmapLineageTests : IDisposable
{
    private const long Disk = 64L << 20;
    private const long Granularity = 4096;

    private readonly TempFolder _folder = new("lineage");

    public DirtyBitmapLineageTests()
    {
        File.WriteAllBytes(Image, new byte[8192]);
    }

    private string Image => _folder.File("disk.img");

    private QuietImage Quiet => new([Image]);

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task ACreatedFileHasALineageThatABeginWithoutProofReplaces()
    {
        var memory = await NewFileAsync();
        var created = await HeaderAsync(memory);
        Assert.True(created.HasLineage);
        Assert.Equal(DirtyBitmapLineageStart.Created, created.LineageStart);

        await using (var store = await BeginAsync(memory, null))
        {
            await store.SaveAsync(new DirtyBitmap(Disk, Granularity), BitmapStoreState.Consistent);
        }

        var first = await HeaderAsync(memory);
        Assert.NotEqual(created.LineageId, first.LineageId);
        Assert.Equal(DirtyBitmapLineageStart.Created, first.LineageStart);

        await using var again = await BeginAsync(memory, null);
        var begun = await HeaderAsync(memory);
        Assert.NotEqual(first.LineageId, begun.LineageId);
        Assert.Equal(DirtyBitmapLineageStart.Unvouched, begun.LineageStart);
    }

    [Fact]
    public async Task ACloseAndABeginOnTheSameUnchangedFilesKeepTheLineage()
    {
        var memory = await NewFileAsync();
        var begun = await CloseAsync(memory);
        var closed = await HeaderAsync(memory);
        Assert.Equal(DirtyBitmapFileState.Consistent, closed.State);
        Assert.Equal(Path.GetFullPath(Image), Assert.Single(closed.Image!).Path);

        await using var again = await BeginAsync(memory, Quiet);
        var resumed = await HeaderAsync(memory);
        Assert.Equal(begun.LineageId, resumed.LineageId);
        Assert.Equal(closed.Generation + 1, resumed.Generation);
    }

    public static TheoryData<string> ChangesWhileUntracked() => ["written", "replaced", "other files"];

    [Theory]
    [MemberData(nameof(ChangesWhileUntracked))]
    public async Task AnImageChangedBetweenTheCloseAndTheNextBeginStartsANewLineage(string change)
    {
        var memory = await NewFileAsync();
        var begun = await CloseAsync(memory);
        var quiet = Quiet;
        switch (change)
        {
            case "written":
                await using (var image = new FileStream(Image, FileMode.Open, FileAccess.Write))
                {
                    image.Write(new byte[] { 1 }); // same size: only the times tell
                }

                break;
            case "replaced":
                File.WriteAllBytes(Image + ".new", new byte[8192]);
                File.Move(Image + ".new", Image, overwrite: true);
                break;
            default:
                File.WriteAllBytes(_folder.File("other.img"), new byte[8192]);
                quiet = new QuietImage([_folder.File("other.img")]);
                break;
        }

        await using var again = await BeginAsync(memory, quiet);
        var renewed = await HeaderAsync(memory);
        Assert.NotEqual(begun.LineageId, renewed.LineageId);
        Assert.Equal(DirtyBitmapLineageStart.ImageChanged, renewed.LineageStart);
    }

    [Fact]
    public async Task AFileLeftActiveByACrashKeepsItsLineageOnlyOnADriveThatHasServedNothing()
    {
        var memory = await NewFileAsync();
        await using (var tracker = await BeginAsync(memory, Quiet))
        {
            await tracker.BeforeWriteAsync(0, 4096);
        }

        // The tracker died without saving: the file is Active.
        var crashed = await HeaderAsync(memory);
        await using (var restarted = await BeginAsync(memory, Quiet))
        {
            Assert.Equal(crashed.LineageId, (await HeaderAsync(memory)).LineageId);
        }

        await using var late = await BeginAsync(memory, null);
        var renewed = await HeaderAsync(memory);
        Assert.NotEqual(crashed.LineageId, renewed.LineageId);
        Assert.Equal(DirtyBitmapLineageStart.ResumedLate, renewed.LineageStart);
        Assert.Equal(DirtyBitmapFileState.Active, renewed.State);
    }

    [Fact]
    public async Task ASaveThatIsNotACloseRecordsNoImageSoTheNextBeginStartsANewLineage()
    {
        var memory = await NewFileAsync();
        await using (var store = await BeginAsync(memory, Quiet))
        {
            await store.SaveAsync(new DirtyBitmap(Disk, Granularity), BitmapStoreState.Consistent);
        }

        Assert.Null((await HeaderAsync(memory)).Image);
        await using var again = await BeginAsync(memory, Quiet);
        Assert.Equal(DirtyBitmapLineageStart.Unvouched, (await HeaderAsync(memory)).LineageStart);
    }

    [Fact]
    public async Task AClearStartsANewLineageDurablyAndKeepsTheState()
    {
        var memory = await NewFileAsync();
        await using var store = await BeginAsync(memory, Quiet);
        var before = await HeaderAsync(memory);
        await store.ClearedAsync();

        var after = await HeaderAsync(memory);
        Assert.NotEqual(before.LineageId, after.LineageId);
        Assert.Equal(DirtyBitmapLineageStart.Cleared, after.LineageStart);
        Assert.Equal(DirtyBitmapFileState.Active, after.State);
    }

    [Fact]
    public async Task AReaderSeesTheImageWrittenAfterTheClose()
    {
        var memory = await NewFileAsync();
        await CloseAsync(memory);
        string bitmap = _folder.File("t0.dbmp");
        File.WriteAllBytes(bitmap, memory.ToArray());
        Assert.Null((await LineageAsync(bitmap))!.ImageChanged);

        File.AppendAllText(Image, "x");
        Assert.Equal($"'{Path.GetFullPath(Image)}' was written", (await LineageAsync(bitmap))!.ImageChanged);
    }

    [Fact]
    public async Task AHeaderFromBeforeLineagesReadsWithoutOneAndGetsOneAtTheNextBegin()
    {
        var memory = await NewFileAsync();
        var bytes = memory.ToArray();
        for (int slot = 0; slot < 2; slot++)
        {
            var span = bytes.AsSpan(slot * DirtyBitmapHeader.SlotSize, DirtyBitmapHeader.SlotSize);
            span[DirtyBitmapHeader.Length..].Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(span[12..], DirtyBitmapHeader.Length);
            Reseal(span);
        }

        var old = await DirtyBitmapTestFile.NodeOfAsync(bytes);
        Assert.False((await HeaderAsync(old)).HasLineage);
        await using var store = await BeginAsync(old, Quiet);
        var begun = await HeaderAsync(old);
        Assert.True(begun.HasLineage);
        Assert.Equal(DirtyBitmapLineageStart.None, begun.LineageStart);
    }

    public static TheoryData<string, int, uint, string> HostileRecords() => new()
    {
        { "a record longer than the header", 148, 5000, "does not fit" },
        { "a path past the record", DirtyBitmapHeader.ExtendedLength + 2 + 40, 60000, "outside the record" },
        { "a count past the record", DirtyBitmapHeader.ExtendedLength, 9, "ends inside stamp" },
    };

    [Theory]
    [MemberData(nameof(HostileRecords))]
    public async Task AHostileImageRecordIsRefusedWithOneLine(string situation, int offset, uint value, string reason)
    {
        var memory = await NewFileAsync();
        await CloseAsync(memory);
        var bytes = memory.ToArray();
        var header = await HeaderAsync(memory);
        var span = bytes.AsSpan(header.Slot * DirtyBitmapHeader.SlotSize, DirtyBitmapHeader.SlotSize);
        if (offset == 148)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(span[offset..], value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span[offset..], (ushort)value);
        }

        Reseal(span);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await DirtyBitmapStore.OpenAsync(await DirtyBitmapTestFile.NodeOfAsync(bytes), "evil.dbmp"));
        Assert.Equal(BlockError.Corrupt, e.Error);
        Assert.True(e.Message.StartsWith("evil.dbmp: ", StringComparison.Ordinal) && e.Message.Contains(reason, StringComparison.Ordinal), $"{situation}: {e.Message}");
        Assert.DoesNotContain('\n', e.Message);
    }

    private static async Task<MemoryNode> NewFileAsync() => await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity));

    private static async Task<DirtyBitmapHeader> HeaderAsync(IBlockNode file) => await DirtyBitmapFile.ReadHeaderAsync(file, "t");

    /// <summary>A store on <paramref name="memory"/> (which outlives it), loaded and begun as a drive would.</summary>
    private static async Task<DirtyBitmapStore> BeginAsync(MemoryNode memory, QuietImage? quiet)
    {
        var (store, _, _) = await DirtyBitmapTestFile.LoadAsync(new DelegatingNode(memory));
        await store.BeginTrackingAsync(quiet);
        return store;
    }

    /// <summary>Tracking from a quiet start to a close; returns the header while it tracked.</summary>
    private async Task<DirtyBitmapHeader> CloseAsync(MemoryNode memory)
    {
        await using var store = await BeginAsync(memory, Quiet);
        var begun = await HeaderAsync(memory);
        var bits = new DirtyBitmap(Disk, Granularity);
        bits.Set(0, 4096);
        await store.SaveAtCloseAsync(bits, Quiet);
        return begun;
    }

    private static async Task<BitmapLineage?> LineageAsync(string path)
    {
        await using var node = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Format = DirtyBitmapFormatDriver.FormatName, ReadOnly = true, AllowNonDisk = true });
        return ((IBitmapImage)node).Lineage;
    }

    /// <summary>The header checksum again over the copy's header size (the first 16 bytes of SHA-256, its own field as zero).</summary>
    private static void Reseal(Span<byte> slot)
    {
        int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(slot[12..]);
        slot.Slice(112, 16).Clear();
        SHA256.HashData(slot[..size])[..16].CopyTo(slot[112..]);
    }
}
