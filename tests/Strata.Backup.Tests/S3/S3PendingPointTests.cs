using Strata.Backup.Stores;
using Strata.TestKit;

namespace Strata.Backup.Tests.S3;

/// <summary>The record of a staged point's upload, and every reason it is not continued (no store needed).</summary>
public sealed class S3PendingPointTests
{
    private static readonly S3Location Location = S3Location.Parse("s3://bset/vm/disk0");

    [Fact]
    public void AStagedPointReadsBackAsRecordedAndMatchesTheSetItWasMadeFor()
    {
        using var staging = new TempFolder("pend");
        var pending = StageAndRecord(staging.Path, lastManifest: null);

        var (read, problem) = S3PendingPoint.Read(staging.Path);

        Assert.Null(problem);
        Assert.NotNull(read);
        Assert.Equal(pending.Record, read.Record);
        Assert.Null(read.Mismatch(Location, BackupSet.Open(staging.File("set"), create: true), null));
    }

    [Fact]
    public void APendingFolderWithoutItsRecordIsNothingToContinue()
    {
        using var staging = new TempFolder("pend");
        File.WriteAllBytes(staging.File("0000.qcow2"), new byte[100]);
        File.WriteAllBytes(staging.File("0000.json"), "{}"u8.ToArray());
        S3PendingPoint.Stage(staging.Path, 0);

        Assert.Equal((null, null), S3PendingPoint.Read(staging.Path));
        Assert.False(S3PendingPoint.IsRecorded(staging.Path));
    }

    [Theory]
    [InlineData("another set", "it was staged for s3://bset/vm/disk0")]
    [InlineData("a point added", "it was to be point 0, and the set has 1 point(s) now")]
    [InlineData("the base changed", "the set's last point changed since it was staged")]
    [InlineData("image written", "its staged image was changed or replaced since")]
    [InlineData("image gone", "its staged image is missing")]
    [InlineData("manifest written", "its staged manifest was changed since")]
    public void APendingPointIsNotContinuedWhenAnythingDiffers(string change, string expected)
    {
        using var staging = new TempFolder("pend");
        var pending = StageAndRecord(staging.Path, lastManifest: null);
        var set = BackupSet.Open(staging.File("set"), create: true);
        var location = Location;
        byte[]? last = null;
        switch (change)
        {
            case "another set":
                location = S3Location.Parse("s3://bset/vm/disk1");
                break;
            case "a point added":
                File.WriteAllBytes(Path.Combine(set.Folder, "0000.json"), ManifestJson.Serialize(Manifests.Full()));
                set = BackupSet.Open(set.Folder);
                break;
            case "the base changed":
                last = "{}"u8.ToArray();
                break;
            case "image written":
                File.AppendAllText(pending.ImagePath, "x");
                break;
            case "image gone":
                File.Delete(pending.ImagePath);
                break;
            case "manifest written":
                File.AppendAllText(pending.ManifestPath, " ");
                break;
        }

        Assert.Equal(expected, pending.Mismatch(location, set, last));
    }

    private static S3PendingPoint StageAndRecord(string staging, byte[]? lastManifest)
    {
        byte[] manifest = "{\"point\": 0}"u8.ToArray();
        File.WriteAllBytes(Path.Combine(staging, "0000.qcow2"), new byte[4096]);
        File.WriteAllBytes(Path.Combine(staging, "0000.json"), manifest);
        var (image, _) = S3PendingPoint.Stage(staging, 0);
        var (size, modified) = S3PendingPoint.Stat(image);
        return S3PendingPoint.Commit(staging, new PendingUpload
        {
            Set = Location.ToString(), Point = 0, Key = Location.Key("0000.qcow2"), UploadId = "2~upload", PartSize = 16 << 20,
            Size = size, Modified = modified, ManifestSha256 = S3PendingPoint.Fingerprint(manifest),
            BaseSha256 = lastManifest is null ? null : S3PendingPoint.Fingerprint(lastManifest),
        });
    }
}
