using Strata.Block.Drivers;

namespace Strata.Block.Tests.Drivers;

public sealed class DriverRegistryTests
{
    private static readonly byte[] ToyMagic = "TOY!"u8.ToArray();

    private static DriverRegistry Registry(FormatRecognizer? recognize = null) => new(
        [new StubFormatDriver("plain"), new StubFormatDriver("toy", ToyMagic)],
        [new StubProtocolDriver(ImageLocator.FileProtocol), new StubProtocolDriver("mem")],
        recognize);

    [Fact]
    public void AnUnknownFormatNameIsRefusedWithOneLineThatListsTheRegisteredFormats()
    {
        var e = Assert.Throws<BlockException>(() => Registry().Format("vmdk"));
        Assert.Equal("Unknown driver 'vmdk' (supported: plain, toy)", e.Message);
        Assert.Equal(BlockError.InvalidArgument, e.Error);
    }

    [Fact]
    public void AFormatAddedWithWithIsFoundByNameAndTheOriginalRegistryIsUnchanged()
    {
        var registry = Registry();
        var more = registry.With(new StubFormatDriver("extra"));
        Assert.Equal("extra", more.Format("extra").Name);
        Assert.False(registry.HasFormat("extra"));
        Assert.Equal("plain, toy, extra", more.FormatNames);
    }

    [Fact]
    public void TwoFormatDriversWithOneNameAreRefused()
    {
        Assert.Throws<ArgumentException>(() => Registry().With(new StubFormatDriver("toy")));
    }

    [Fact]
    public void ANameWithARegisteredProtocolPrefixIsALocatorOfThatProtocol()
    {
        var locator = Registry().Locate("mem:pool/disk");
        Assert.Equal("mem", locator.Protocol);
        Assert.Equal("pool/disk", locator.Target);
        Assert.Equal("mem:pool/disk", locator.Text);
    }

    [Fact]
    public void ANameWhosePrefixIsNoRegisteredProtocolIsALocalPath()
    {
        var locator = Registry().Locate("rbd:pool/disk");
        Assert.True(locator.IsFile);
        Assert.Equal(Path.GetFullPath("rbd:pool/disk"), locator.Target);
    }

    [Fact]
    public void TwoSpellingsOfOneFileAreOneImage()
    {
        var registry = Registry();
        Assert.Equal(registry.Locate("/tmp/x/../a.img"), registry.Locate("/tmp/a.img"));
        Assert.NotEqual(registry.Locate("mem:a.img"), registry.Locate("/tmp/a.img"));
    }

    [Theory]
    [InlineData("/images/top.qcow2", "base.raw", "/images/base.raw")]
    [InlineData("/images/top.qcow2", "../other/base.raw", "/other/base.raw")]
    [InlineData("/images/top.qcow2", "/abs/base.raw", "/abs/base.raw")]
    [InlineData("/images/top.qcow2", "mem:pool/base", "mem:pool/base")]
    [InlineData("mem:pool/top", "base", "mem:pool/base")]
    [InlineData("mem:pool/top", "/base", "mem:/base")]
    [InlineData("mem:top", "base", "mem:base")]
    public void ARelativeBackingNameResolvesAgainstItsOverlaysLocator(string overlay, string backing, string expected)
    {
        var registry = Registry();
        Assert.Equal(expected, registry.ResolveBacking(registry.Locate(overlay), backing).Text);
    }

    [Fact]
    public async Task ProbingPicksTheFormatWhoseSignatureMatchesOverTheOneThatTakesAnything()
    {
        var image = new MemoryNode(4096);
        await image.WriteAsync(0, ToyMagic);
        Assert.Equal("toy", (await Registry().ProbeAsync(image)).Name);
        Assert.Equal("plain", (await Registry().ProbeAsync(new MemoryNode(4096))).Name);
    }

    [Fact]
    public async Task AnImageThatLooksLikeAFormatNoDriverReadsIsRefusedRatherThanTakenForTheFallback()
    {
        var e = await Assert.ThrowsAsync<BlockException>(async () =>
            await Registry(start => start.StartsWith("KDMV"u8) ? "vmdk" : null).ProbeAsync(await WithStartAsync("KDMV"u8.ToArray())));
        Assert.Contains("looks like a vmdk image, which Strata does not read", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    private static async Task<MemoryNode> WithStartAsync(byte[] start)
    {
        var image = new MemoryNode(4096);
        await image.WriteAsync(0, start);
        return image;
    }
}
