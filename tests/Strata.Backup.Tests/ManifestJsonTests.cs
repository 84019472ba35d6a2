using System.Text;

namespace Strata.Backup.Tests;

public sealed class ManifestJsonTests
{
    [Fact]
    public void AManifestReadsBackAsItWasWritten()
    {
        var manifest = Manifests.Full(tracking: Manifests.Bitmap("/srv/t1.dbmp", 2, "active")) with { Fallback = "the set has no point yet" };

        var read = ManifestJson.Parse(ManifestJson.Serialize(manifest), "m");

        Assert.Equal(manifest.Point, read.Point);
        Assert.Equal(manifest.Kind, read.Kind);
        Assert.Equal(manifest.Fallback, read.Fallback);
        Assert.Equal(manifest.Chunks, read.Chunks);
        Assert.Equal(manifest.Extents, read.Extents);
        Assert.Equal(manifest.Tracking, read.Tracking);
    }

    [Fact]
    public void TheKindIsWrittenAsAWordAndNamesInKebabCase()
    {
        string json = Encoding.UTF8.GetString(ManifestJson.Serialize(Manifests.Full()));

        Assert.Contains("\"kind\": \"full\"", json);
        Assert.Contains("\"chunk-size\": 4194304", json);
    }

    [Theory]
    [InlineData("\"version\": 1", "\"version\": 3", "unsupported manifest version 3")]
    [InlineData("\"version\": 1", "\"version\": 2", "a version 2 manifest without a leaf size")]
    [InlineData("\"version\": 1,", "\"version\": 1, \"leaf-size\": 65536,", "a version 1 manifest with a leaf size")]
    [InlineData("\"size\": 8388608", "\"size\": 9000000", "chunk hashes for a disk of 9000000 bytes")]
    [InlineData("\"image\": \"0000.qcow2\"", "\"image\": \"../x.qcow2\"", "is not a file name in the set")]
    [InlineData("\"length\": 8388608", "\"length\": 8388609", "an extent outside the disk")]
    [InlineData("\"kind\": \"full\"", "\"kind\": \"incremental\"", "an incremental point without a backing image")]
    public void ABadManifestIsRefusedInOneLine(string field, string replacement, string expected)
    {
        string json = Encoding.UTF8.GetString(ManifestJson.Serialize(Manifests.Full()));
        Assert.Contains(field, json);

        var e = Assert.Throws<BackupException>(() => ManifestJson.Parse(Encoding.UTF8.GetBytes(json.Replace(field, replacement, StringComparison.Ordinal)), "m.json"));

        Assert.Contains(expected, e.Message);
        Assert.StartsWith("m.json: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void TextThatIsNoManifestIsRefusedInOneLine()
    {
        var e = Assert.Throws<BackupException>(() => ManifestJson.Parse("{ nope"u8, "m.json"));

        Assert.StartsWith("m.json: not a backup manifest", e.Message);
    }
}
