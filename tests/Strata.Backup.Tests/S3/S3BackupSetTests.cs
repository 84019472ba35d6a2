using System.Text.Json;
using Amazon.S3.Model;
using Strata.TestKit;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// Backup sets in the S3 store of a real Ceph gateway, through the built strata: a full point and
/// incrementals written as objects, listed, verified and restored straight from the store (ranged
/// GETs, the incrementals' backing chain included), checked with qemu-img; s3cmd as the independent
/// reader; bad credentials and a missing bucket as one clear line.
/// </summary>
public sealed class S3BackupSetTests
{
    [Fact]
    public async Task AFullPointAndIncrementalsInTheStoreRestoreEqualToTheDiskAtEachPoint()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        for (int point = 0; point < 3; point++)
        {
            var made = await s3.StrataAsync([.. await s3.NextPointAsync(seed, writes: 30), "--output=json"]);
            Assert.True(made.ExitCode == 0, $"seed {seed}: {made}");
            using var json = JsonDocument.Parse(made.Stdout);
            Assert.Equal(point == 0 ? "full" : "incremental", json.RootElement.GetProperty("kind").GetString());
            Assert.Equal($"{s3.Set}/{BackupSet.ImageName(point)}", json.RootElement.GetProperty("image").GetString());
        }

        var list = await s3.StrataOkAsync("backup", "list", s3.Set, "--output=json");
        using var points = JsonDocument.Parse(list.Stdout);
        Assert.Equal(["full", "incremental", "incremental"], points.RootElement.EnumerateArray().Select(p => p.GetProperty("kind").GetString()));
        Assert.Equal(["0000.qcow2", "0000.qcow2", "0001.qcow2"], points.RootElement.EnumerateArray().Select(p => p.GetProperty("backing").GetString() ?? "0000.qcow2"));
        Assert.Equal(0, (await s3.StrataAsync(["backup", "verify", s3.Set])).ExitCode);
        for (int point = 0; point < 3; point++)
        {
            await s3.AssertRestoresAsync(point, $"seed {seed}");
        }

        Assert.Empty(await s3.UploadsAsync());
    }

    [Fact]
    public async Task S3cmdFindsThePointsWhereTheDocsSayAndQemuImgRestoresThemFromTheDownload()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 20));
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 20));
        var s3cmd = S3cmd(s3);

        var listed = Processes.Run("s3cmd", [.. s3cmd, "ls", "--recursive", $"s3://{s3.Bucket}/"]).AssertSuccess();
        var keys = listed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1]).Order(StringComparer.Ordinal);
        Assert.Equal([$"{s3.Set}/0000.json", $"{s3.Set}/0000.qcow2", $"{s3.Set}/0001.json", $"{s3.Set}/0001.qcow2"], keys);
        string download = s3.File("download");
        Directory.CreateDirectory(download);
        Processes.Run("s3cmd", [.. s3cmd, "get", "--recursive", $"{s3.Set}/", download + "/"]).AssertSuccess();
        string point1 = Path.Combine(download, "0001.qcow2");
        Processes.Run("qemu-img", "check", "-f", "qcow2", point1).AssertSuccess();
        var compare = Processes.Run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", point1, s3.References[1]);
        Assert.True(compare.ExitCode == 0, $"seed {seed}: {compare}");
        var manifest = ManifestJson.Parse(await File.ReadAllBytesAsync(Path.Combine(download, "0001.json")), "0001.json");
        Assert.Equal(("0001.qcow2", "0000.qcow2"), (manifest.Image, manifest.Backing));
    }

    [Fact]
    public async Task StrataImgReadsAPointWhereItIsInTheStoreBackingChainIncludedAndWritesNothingThere()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 20));
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 20));
        string point1 = $"{s3.Set}/{BackupSet.ImageName(1)}";

        var info = await s3.StrataOkAsync("img", "info", point1);
        Assert.Contains("file format: qcow2", info.Stdout, StringComparison.Ordinal);
        Assert.Contains("backing file: 0000.qcow2", info.Stdout, StringComparison.Ordinal);
        string raw = s3.File("point1.raw");
        await s3.StrataOkAsync("img", "convert", "-O", "raw", point1, raw);
        var compare = Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "raw", raw, s3.References[1]);
        Assert.True(compare.ExitCode == 0, $"seed {seed}: {compare}");
        var map = await s3.StrataOkAsync("img", "map", "--output=json", point1);
        Assert.Contains("\"data\": true", map.Stdout, StringComparison.Ordinal);

        var keys = await s3.KeysAsync();
        foreach (var (args, reason) in new[]
        {
            (new[] { "img", "create", "-f", "qcow2", $"{s3.Set}/new.qcow2", "1M" }, "not created in an S3 store"),
            (new[] { "img", "convert", "-O", "qcow2", raw, $"{s3.Set}/new.qcow2" }, "not created in an S3 store"),
            (new[] { "img", "info", $"{s3.Set}/{BackupSet.ImageName(7)}" }, "No such object"),
        })
        {
            var refused = await s3.StrataAsync(args);
            Assert.True(refused.ExitCode == 1, refused.ToString());
            string line = Assert.Single(refused.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains(reason, line, StringComparison.Ordinal);
        }

        Assert.Equal(keys, await s3.KeysAsync());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task VerifyFindsAByteFlippedInAnImageObject(int flipped)
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 20));
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 20));
        string key = $"vm/disk0/{BackupSet.ImageName(flipped)}";
        string local = s3.File("flip.qcow2");
        using (var got = await s3.Client.GetObjectAsync(s3.Bucket, key))
        {
            await got.WriteResponseStreamToFileAsync(local, append: false, CancellationToken.None);
        }

        long guestOffset = ImageDamage.FlipDataByte(local);
        await s3.Client.PutObjectAsync(new PutObjectRequest { BucketName = s3.Bucket, Key = key, FilePath = local });

        var result = await s3.StrataAsync(["backup", "verify", "--output=json", s3.Set]);

        Assert.True(result.ExitCode == 2, $"seed {seed}: {result}");
        using var report = JsonDocument.Parse(result.Stdout);
        var bad = report.RootElement.EnumerateArray().First(p => p.GetProperty("point").GetInt32() == flipped);
        Assert.Contains(bad.GetProperty("mismatches").EnumerateArray(),
            m => m.GetProperty("start").GetInt64() <= guestOffset && guestOffset < m.GetProperty("start").GetInt64() + m.GetProperty("length").GetInt64());
    }

    [Theory]
    [InlineData("create")]
    [InlineData("list")]
    public async Task WrongCredentialsGiveOneLineAndExitStatus3(string command)
    {
        using var s3 = new S3Fixture();
        string[] args = command == "create" ? await s3.NextPointAsync(0, 0) : ["backup", "list", s3.Set];

        var result = await s3.StrataAsync(args, s3.Environment(secret: "not-the-secret"));

        Assert.True(result.ExitCode == 3, result.ToString());
        Assert.Equal(
            $"strata backup: {s3.Set}: the store refused the credentials (SignatureDoesNotMatch): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials",
            result.Stderr.Trim());
        Assert.Empty(await s3.KeysAsync());
    }

    [Fact]
    public async Task TheEndpointAndCredentialsAreTakenFromTheAwsFilesWhenNoVariableGivesThem()
    {
        using var s3 = new S3Fixture();
        await s3.StrataOkAsync(await s3.NextPointAsync(0, 0));
        string aws = s3.File(".aws");
        Directory.CreateDirectory(aws);
        await File.WriteAllTextAsync(Path.Combine(aws, "credentials"), $"[backup]\naws_access_key_id = {s3.Cluster.AccessKey}\naws_secret_access_key = {s3.Cluster.SecretKey}\n");
        await File.WriteAllTextAsync(Path.Combine(aws, "config"), $"[profile backup]\nregion = us-east-1\nendpoint_url = {s3.Cluster.S3Endpoint}\n");
        var environment = s3.Environment();
        foreach (string name in new[] { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION" })
        {
            environment[name] = null;
        }

        environment["AWS_PROFILE"] = "backup";
        var list = await s3.StrataAsync(["backup", "list", s3.Set, "--output=json"], environment);

        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains("\"kind\": \"full\"", list.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMissingBucketIsOneLineAndExitStatus1()
    {
        using var s3 = new S3Fixture();
        string set = $"s3://{CephCluster.UniqueName("nobucket")}/x";

        var result = await s3.StrataAsync(["backup", "list", set]);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Equal($"strata backup: {set}: no such bucket", result.Stderr.Trim());
    }

    [Fact]
    public async Task AnEmptyPrefixListsNoPointAndRestoreSaysSo()
    {
        using var s3 = new S3Fixture();

        var list = await s3.StrataOkAsync("backup", "list", s3.Set, "--output=json");
        var restore = await s3.StrataAsync(["backup", "restore", s3.Set, s3.File("r.img")]);

        Assert.Equal("[]", list.Stdout.Trim());
        Assert.Equal(1, restore.ExitCode);
        Assert.EndsWith("the backup set has no point yet", restore.Stderr.Trim(), StringComparison.Ordinal);
    }

    /// <summary>s3cmd's options for the cluster's gateway (it reads no AWS_* variable).</summary>
    internal static string[] S3cmd(S3Fixture s3)
    {
        string host = new Uri(s3.Cluster.S3Endpoint).Authority;
        return ["--no-ssl", $"--host={host}", $"--host-bucket={host}", $"--access_key={s3.Cluster.AccessKey}", $"--secret_key={s3.Cluster.SecretKey}",
            "--config=/dev/null", "--signature-v2"];
    }
}
