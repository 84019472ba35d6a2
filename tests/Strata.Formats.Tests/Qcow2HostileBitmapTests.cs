using System.Buffers.Binary;
using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>
/// Hostile bitmap directories (qcow2.txt, "Bitmaps extension"): every tampered field gives one clear
/// error, never a huge allocation or a write over other metadata; what QEMU still opens for reading
/// opens here too.
/// </summary>
public sealed class Qcow2HostileBitmapTests
{
    [Theory]
    [InlineData(false, 0, 0xffffffffu, "nb_bitmaps")]
    [InlineData(false, 0, 0u, "nb_bitmaps")]
    [InlineData(false, 4, 1u, "reserved")]
    [InlineData(false, 8, 0x7fffffffu, "bitmap_directory_size")]
    [InlineData(false, 12, 0xffffffffu, "bitmap_directory_size")]
    [InlineData(false, 20, 0x00000200u, "bitmap_directory_offset")]
    [InlineData(false, 16, 0x7fffffffu, "bitmap_directory_offset")]
    [InlineData(true, 4, 0x200u, "bitmap_table_offset")]
    [InlineData(true, 0, 0x7fffffffu, "bitmap_table_offset")]
    [InlineData(true, 8, 0x7fffffffu, "bitmap_table_size")]
    [InlineData(true, 8, 0u, "bitmap_table_size")]
    [InlineData(true, 12, 0x10u, "reserved flags")]
    [InlineData(true, 16, 0x02100002u, "type")]
    [InlineData(true, 16, 0x01400002u, "granularity_bits")]
    [InlineData(true, 16, 0x01080002u, "granularity_bits")]
    [InlineData(true, 16, 0x01100000u, "name_size")]
    [InlineData(true, 16, 0x01100400u, "past the end")]
    [InlineData(true, 20, 0x7fffffffu, "past the end")]
    public async Task ATamperedExtensionOrDirectoryEntryIsRefusedWithOneLine(bool inDirectory, int field, uint value, string named)
    {
        using var dir = new TempFolder("bmhx");
        string image = Qcow2BitmapTests.QemuImageWithBitmap(dir, "b0", "write 0 64k");
        Patch32(image, (inDirectory ? DirectoryOffset(image) : ExtensionDataOffset(image)) + field, value);

        var e = await Assert.ThrowsAsync<BlockException>(() => Qcow2TestImage.OpenAsync(image, readOnly: true));
        Assert.Contains(named, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task ABitmapTablePointingAtTheL1TableOpensForReadingOnly()
    {
        using var dir = new TempFolder("bmhl1");
        string image = Qcow2BitmapTests.QemuImageWithBitmap(dir, "b0", "write 0 64k");
        long l1 = Read64(image, 40);
        Patch64(image, DirectoryOffset(image), (ulong)l1);

        await using (var node = await Qcow2TestImage.OpenAsync(image, readOnly: true))
        {
            Assert.Equal("b0", node.StoredBitmaps.Single().Name);
        }

        var e = await Assert.ThrowsAsync<BlockException>(() => Qcow2TestImage.OpenAsync(image));
        Assert.Contains("overlaps the active L1 table", e.Message);
    }

    [Fact]
    public async Task ATableEntryWithReservedBitsFailsTheLoadAndIsACorruptionForCheck()
    {
        using var dir = new TempFolder("bmhte");
        string image = Qcow2BitmapTests.QemuImageWithBitmap(dir, "b0", "write 0 64k");
        long table = Read64(image, DirectoryOffset(image));
        Patch64(image, table, 0xff00000000000000UL);

        await using var node = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await node.OpenBitmap("b0").LoadAsync(new DirtyBitmap(node.Size, 65536)));
        Assert.Contains("reserved bits", e.Message);
        var check = await node.CheckAsync(Qcow2RepairMode.None);
        Assert.Contains(check.Messages, m => m.Contains("bitmap 'b0' table entry 0", StringComparison.Ordinal));
        Assert.True(check.Corruptions > 0);
    }

    [Fact]
    public async Task WithoutTheAutoclearBitTheBitmapsAreIgnoredAndDroppedByAWriter()
    {
        using var dir = new TempFolder("bmhac");
        string image = Qcow2BitmapTests.QemuImageWithBitmap(dir, "b0", "write 0 64k");
        Patch64(image, 88, 0);

        await using (var node = await Qcow2TestImage.OpenAsync(image, readOnly: true))
        {
            Assert.Empty(node.StoredBitmaps);
        }

        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            await node.WriteAsync(0, new byte[512]);
        }

        // As after QEMU drops such an extension: no bitmaps, and its clusters are leaks, not errors.
        var info = Processes.Ok("qemu-img", "info", image);
        Assert.DoesNotContain("bitmaps", info);
        var check = QemuImg.Check(image);
        Assert.Equal(0, check.TryGetProperty("corruptions", out var c) ? c.GetInt64() : 0);
        Assert.True(check.GetProperty("leaks").GetInt64() > 0);
    }

    [Fact]
    public async Task ABitmapWithUnknownExtraDataIsListedButNotUsed()
    {
        using var dir = new TempFolder("bmhxd");
        string image = dir.File("x.qcow2");
        await Qcow2TestImage.CreateAsync(image, new Qcow2CreateOptions { Size = 1 << 20 });
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            await using var store = await node.CreateBitmapAsync("bm", 65536, enabled: false);
        }

        // Give the entry 8 bytes of extra data (before the name), keeping the directory's size.
        long entry = DirectoryOffset(image);
        var bytes = File.ReadAllBytes(image);
        bytes.AsSpan((int)entry + 24, 2).CopyTo(bytes.AsSpan((int)entry + 32));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan((int)entry + 20), 8);
        File.WriteAllBytes(image, bytes);
        long extension = ExtensionDataOffset(image);
        Patch64(image, extension + 8, 40);

        await using var reopened = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        Assert.Equal("bm", reopened.StoredBitmaps.Single().Name);
        var e = Assert.Throws<BlockException>(() => reopened.OpenBitmap("bm"));
        Assert.Contains("extra data", e.Message);
    }

    private static long ExtensionDataOffset(string image)
    {
        var header = File.ReadAllBytes(image).AsSpan(0, 65536);
        for (int pos = BinaryPrimitives.ReadInt32BigEndian(header[100..]); pos + 8 <= header.Length;)
        {
            uint type = BinaryPrimitives.ReadUInt32BigEndian(header[pos..]);
            int length = BinaryPrimitives.ReadInt32BigEndian(header[(pos + 4)..]);
            if (type == 0x23852875)
            {
                return pos + 8;
            }

            Assert.NotEqual(0u, type);
            pos += 8 + ((length + 7) & ~7);
        }

        throw new InvalidOperationException("no bitmaps extension");
    }

    private static long DirectoryOffset(string image) => Read64(image, ExtensionDataOffset(image) + 16);

    private static long Read64(string image, long offset)
    {
        using var file = File.OpenHandle(image);
        var buffer = new byte[8];
        RandomAccess.Read(file, buffer, offset);
        return BinaryPrimitives.ReadInt64BigEndian(buffer);
    }

    private static void Patch32(string image, long offset, uint value)
    {
        var buffer = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(buffer, value);
        using var file = File.OpenHandle(image, FileMode.Open, FileAccess.ReadWrite);
        RandomAccess.Write(file, buffer, offset);
    }

    private static void Patch64(string image, long offset, ulong value)
    {
        var buffer = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(buffer, value);
        using var file = File.OpenHandle(image, FileMode.Open, FileAccess.ReadWrite);
        RandomAccess.Write(file, buffer, offset);
    }
}
