using System.Buffers.Binary;
using System.Text;

namespace Strata.Formats.Tests;

public sealed class ImageSignaturesTests
{
    public static TheoryData<string, byte[]> Headers() => new()
    {
        { "qcow2", [(byte)'Q', (byte)'F', (byte)'I', 0xfb, 0, 0, 0, 3] },
        { "qed", "QED\0"u8.ToArray() },
        { "vmdk", "KDMV"u8.ToArray() },
        { "vmdk", "COWD"u8.ToArray() },
        { "vmdk", "# Disk DescriptorFile\n\nversion=1\nCID=fffffffe\n"u8.ToArray() },
        { "vhdx", "vhdxfile"u8.ToArray() },
        { "vpc", "conectix"u8.ToArray() },
        { "luks", [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xba, 0xbe, 0, 1] },
        { "parallels", "WithoutFreeSpace"u8.ToArray() },
        { "bochs", "Bochs Virtual HD Image"u8.ToArray() },
    };

    [Theory]
    [MemberData(nameof(Headers))]
    public void AFormatsHeaderAtTheStartIsRecognised(string format, byte[] header)
    {
        var sector = new byte[512];
        header.CopyTo(sector, 0);
        Assert.Equal(format, ImageSignatures.Detect(sector));
    }

    [Fact]
    public void TheVdiSignatureIsRecognisedAtItsOffset()
    {
        var sector = new byte[512];
        BinaryPrimitives.WriteUInt32LittleEndian(sector.AsSpan(64), 0xbeda107f);
        Assert.Equal("vdi", ImageSignatures.Detect(sector));
    }

    [Fact]
    public void ABootSectorAndZeroesAreRaw()
    {
        var mbr = new byte[512];
        new Random(7).NextBytes(mbr.AsSpan(0, 446));
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        Assert.Null(ImageSignatures.Detect(mbr));
        Assert.Null(ImageSignatures.Detect(new byte[512]));
        Assert.Null(ImageSignatures.Detect([]));
    }

    [Fact]
    public void TextThatIsNotADescriptorIsRaw()
    {
        Assert.Null(ImageSignatures.Detect(Encoding.ASCII.GetBytes("# a comment\nsomething else\nversion=1\n")));
        Assert.Null(ImageSignatures.Detect(Encoding.ASCII.GetBytes("hello version=1\n")));
    }

    [Fact]
    public void OnlyTheFirstSectorCounts()
    {
        var data = new byte[1024];
        "QFI"u8.CopyTo(data.AsSpan(512));
        data[515] = 0xfb;
        Assert.Null(ImageSignatures.Detect(data));
    }
}
