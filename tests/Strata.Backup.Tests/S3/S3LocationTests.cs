using Strata.Backup.Stores;

namespace Strata.Backup.Tests.S3;

public sealed class S3LocationTests
{
    [Theory]
    [InlineData("s3://backups/vm1/disk0", "backups", "vm1/disk0", "vm1/disk0/0000.json")]
    [InlineData("s3://backups/vm1/disk0/", "backups", "vm1/disk0", "vm1/disk0/0000.json")]
    [InlineData("s3://backups", "backups", "", "0000.json")]
    [InlineData("s3://backups/", "backups", "", "0000.json")]
    public void AnAddressSplitsIntoBucketAndPrefixAndNamesKeysUnderIt(string text, string bucket, string prefix, string key)
    {
        var location = S3Location.Parse(text);

        Assert.Equal((bucket, prefix, key), (location.Bucket, location.Prefix, location.Key("0000.json")));
        Assert.Equal($"s3://{bucket}/{key}", location.Address("0000.json"));
    }

    [Theory]
    [InlineData("s3://Backups/x", "is not a bucket name")]
    [InlineData("s3://ab/x", "is not a bucket name")]
    [InlineData("s3://-ab/x", "is not a bucket name")]
    [InlineData("s3://b_b/x", "is not a bucket name")]
    [InlineData("s3://bucket/a//b", "an empty, '.' or '..' part")]
    [InlineData("s3://bucket/a/../b", "an empty, '.' or '..' part")]
    public void ABadAddressIsOneLine(string text, string why)
    {
        var e = Assert.Throws<BackupException>(() => S3Location.Parse(text));

        Assert.StartsWith(text + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("s3://b/x", true)]
    [InlineData("/backups/s3:/x", false)]
    [InlineData("s3:/b/x", false)]
    public void OnlyTheS3SchemeNamesAStore(string name, bool store) => Assert.Equal(store, S3Location.IsS3(name));
}
