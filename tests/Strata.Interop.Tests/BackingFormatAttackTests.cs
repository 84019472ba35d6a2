using System.Text;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// The backing-format attack: a raw image whose guest-written content looks like a qcow2 header that
/// names a secret host file as its backing. Used as a backing image with its format recorded as raw,
/// it must be read as the raw bytes it is; probing it would leak the secret into the guest.
/// </summary>
public sealed class BackingFormatAttackTests
{
    [Fact]
    public async Task RawBackingRecordedByStrataIsNeverFollowedToTheSecret()
    {
        using var dir = new TempFolder("attack");
        var (evil, secret) = Plant(dir);
        string overlay = dir.File("overlay.qcow2");
        await Images.CreateQcow2Async(overlay, new Qcow2CreateOptions { Size = new FileInfo(evil).Length, BackingFile = "evil.raw", BackingFormat = "raw" });
        await AssertReadsTheRawBytesAsync(overlay, evil, secret);
    }

    [Fact]
    public async Task RawBackingRecordedByQemuImgIsNeverFollowedToTheSecret()
    {
        using var dir = new TempFolder("attack");
        var (evil, secret) = Plant(dir);
        string overlay = dir.File("overlay.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-b", "evil.raw", "-F", "raw", overlay).AssertSuccess();
        await AssertReadsTheRawBytesAsync(overlay, evil, secret);

        // QEMU agrees: the chain has two images, the raw one is its end.
        var chain = Images.QemuImg("info", "--backing-chain", "--output=json", overlay).AssertSuccess();
        Assert.Equal(2, System.Text.Json.JsonDocument.Parse(chain.Stdout).RootElement.GetArrayLength());
    }

    [Fact]
    public void StrataImgConvertAndInfoOfTheOverlayNeverReachTheSecret()
    {
        using var dir = new TempFolder("attack");
        var (evil, secret) = Plant(dir);
        string overlay = dir.File("overlay.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-b", "evil.raw", "-F", "raw", overlay).AssertSuccess();
        string flat = dir.File("flat.raw");
        Processes.Strata("img", "convert", "-O", "raw", overlay, flat).AssertSuccess();
        byte[] seen = File.ReadAllBytes(flat);
        Assert.True(seen.AsSpan().IndexOf(secret) < 0, "strata img convert copied the secret host file");
        Images.AssertSameBytes(File.ReadAllBytes(evil), seen, "converted overlay");
        var chain = Processes.Strata("img", "info", "--backing-chain", "--output=json", overlay).AssertSuccess();
        Assert.Equal(2, System.Text.Json.JsonDocument.Parse(chain.Stdout).RootElement.GetArrayLength());
    }

    private static (string Evil, byte[] Secret) Plant(TempFolder dir)
    {
        byte[] secret = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("TOP-SECRET-HOST-DATA ", 4000)));
        string secretPath = dir.File("secret.raw");
        File.WriteAllBytes(secretPath, secret);
        string evil = new Qcow2ImageBuilder { BackingFile = secretPath, BackingFormat = "raw", DataPattern = 0 }.WriteTo(dir.File("evil.raw"));
        return (evil, Encoding.ASCII.GetBytes("TOP-SECRET"));
    }

    private static async Task AssertReadsTheRawBytesAsync(string overlay, string evil, byte[] secretMarker)
    {
        await using var node = await Images.OpenAsync(overlay, readOnly: true);
        Assert.Equal("raw", node.Backing?.DriverName);
        Assert.Null(node.Backing?.Backing);
        byte[] seen = await Images.ReadAllAsync(node);
        Assert.True(seen.AsSpan().IndexOf(secretMarker) < 0, "the guest can read the secret host file");
        Images.AssertSameBytes(File.ReadAllBytes(evil), seen, "overlay on a raw backing that looks like qcow2");
    }
}
