using System.Text.Json;
using Amazon.S3.Model;
using Strata.TestKit;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// A backup into the S3 store that stops after its point was staged (killed, or the gateway gone
/// through the retries) is continued by the next run of the set on this host: it keeps the parts the
/// store holds whose ETag is the MD5 of the staged bytes, sends the rest, and ends with that point
/// (docs/backup.md, "After a crash"). What changed behind its back is sent again or the point is
/// redone, with one line. The relay (<see cref="GatewayProxy"/>) holds or cuts part 2 of the upload,
/// so part 1, and only it, is in the store when the run stops.
/// </summary>
public sealed class S3BackupResumeTests
{
    private const int PartSize = 16 << 20;

    /// <summary>What is changed between the killed run and the next.</summary>
    public enum Interference
    {
        PartReplaced,
        UploadAborted,
        StagedImageWritten,
    }

    [Fact]
    public async Task ABackupKilledAfterAPartReachedTheStoreIsResumedByTheNextRunWhichSendsOnlyTheRest()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        string[] args = await TwoPartIncrementalAsync(s3, seed);
        await KillAfterPartOneAsync(s3, args, seed);
        var list = await s3.StrataOkAsync("backup", "list", s3.Set);
        Assert.DoesNotContain("0001", list.Stdout, StringComparison.Ordinal);

        await using var proxy = new GatewayProxy(s3.Cluster.S3Endpoint, long.MaxValue, dropOnTrip: false);
        var again = await s3.StrataAsync(args, s3.Environment(proxy.Url));

        Assert.True(again.ExitCode == 0, $"seed {seed}: {again}");
        Assert.Matches(@"^strata backup: resumed point 1 of an interrupted backup \(taken [-0-9: ]+ UTC\): 1 of 2 parts were already in the store; this run made no other point\n", again.Stderr);
        Assert.Contains("point 1 (incremental on point 0)", again.Stdout, StringComparison.Ordinal);
        Assert.True(proxy.Sent < PartSize, $"seed {seed}: {proxy.Sent} bytes went up again, though the store kept a part of {PartSize}");
        Assert.False(Directory.Exists(Path.Combine(s3.StagingFolder, "pending")), "the staged point outlived its upload");
        await AssertSetAsync(s3, seed, 2);
    }

    [Fact]
    public async Task AGatewayCutMidUploadFailsTheRunWithExitStatus3AndTheRunAfterItComesBackResumes()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        string[] args = await s3.NextPointAsync(seed, 0);
        QemuIo.Ok(s3.Disk, "raw", "write -P 0x77 4M 24M"); // a full point of two parts
        File.Copy(s3.Disk, s3.References[0], overwrite: true);
        await using var proxy = GatewayProxy.StoppingPart(s3.Cluster.S3Endpoint, 2, dropOnTrip: true);

        var failed = await s3.StrataAsync(args, s3.Environment(proxy.Url));

        Assert.True(failed.ExitCode == 3, $"seed {seed}: {failed}");
        string line = Assert.Single(failed.Stderr.Trim().Split('\n'));
        Assert.Matches(@"^strata backup: s3://\S+/0000\.qcow2: part 2 of 2: the store did not answer after 6 attempt\(s\): ", line);
        Assert.Equal([1], await s3.StoredPartsAsync());

        proxy.Restore();
        long before = proxy.Sent;
        var again = await s3.StrataAsync(args, s3.Environment(proxy.Url));

        Assert.True(again.ExitCode == 0, $"seed {seed}: {again}");
        Assert.Contains("resumed point 0 of an interrupted backup", again.Stderr, StringComparison.Ordinal);
        Assert.Contains(": 1 of 2 parts were already in the store;", again.Stderr, StringComparison.Ordinal);
        Assert.True(proxy.Sent - before < PartSize, $"seed {seed}: {proxy.Sent - before} bytes went up again, though the store kept a part of {PartSize}");
        await AssertSetAsync(s3, seed, 1);
    }

    [Fact]
    public async Task AnImageWhoseUploadWasCompletedBeforeItsManifestWentUpIsNotSentAgain()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        string[] args = await TwoPartIncrementalAsync(s3, seed);
        await using (var stopping = new GatewayProxy(s3.Cluster.S3Endpoint, @"PUT /\S+/0001\.json[?\s]", dropOnTrip: false))
        {
            await using var backup = BackgroundProcess.Start(Processes.DotnetHost(), [Processes.StrataDll, .. args],
                new ProcessOptions { Environment = s3.Environment(stopping.Url) });
            var asked = await Task.WhenAny(stopping.Tripped, Task.Delay(TimeSpan.FromMinutes(2)));
            Assert.True(asked == stopping.Tripped, $"seed {seed}: the backup never sent its manifest\n{backup}");
            await backup.KillAsync();
        }

        Assert.Contains("vm/disk0/0001.qcow2", await s3.KeysAsync());
        Assert.DoesNotContain("vm/disk0/0001.json", await s3.KeysAsync());
        await using var proxy = new GatewayProxy(s3.Cluster.S3Endpoint, long.MaxValue, dropOnTrip: false);
        var again = await s3.StrataAsync(args, s3.Environment(proxy.Url));

        Assert.True(again.ExitCode == 0, $"seed {seed}: {again}");
        Assert.Contains(": its image was already complete in the store; this run made no other point", again.Stderr, StringComparison.Ordinal);
        Assert.True(proxy.Sent < 1 << 20, $"seed {seed}: {proxy.Sent} bytes went up again for an image already in the store");
        await AssertSetAsync(s3, seed, 2);
    }

    [Theory]
    [InlineData(Interference.PartReplaced, "resumed point 1 of an interrupted backup (taken *): 0 of 2 parts were already in the store; this run made no other point")]
    [InlineData(Interference.UploadAborted, "point 1 of an interrupted backup was not resumed: its upload is gone from the store (aborted or expired); its upload is dropped and this run makes its point anew")]
    [InlineData(Interference.StagedImageWritten, "point 1 of an interrupted backup was not resumed: its staged image was changed or replaced since; its upload is dropped and this run makes its point anew")]
    public async Task WhatChangedBehindAKilledBackupIsSentAgainOrTheRunRedoesThePointWithOneLine(Interference interference, string expected)
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        string[] args = await TwoPartIncrementalAsync(s3, seed);
        await KillAfterPartOneAsync(s3, args, seed);
        var upload = Assert.Single((await s3.Client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = s3.Bucket })).MultipartUploads);
        switch (interference)
        {
            case Interference.PartReplaced:
                await s3.Client.UploadPartAsync(new UploadPartRequest
                {
                    BucketName = s3.Bucket, Key = upload.Key, UploadId = upload.UploadId, PartNumber = 1, InputStream = new MemoryStream(new byte[PartSize]), PartSize = PartSize,
                });
                break;
            case Interference.UploadAborted:
                await s3.Client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = s3.Bucket, Key = upload.Key, UploadId = upload.UploadId });
                break;
            case Interference.StagedImageWritten:
                await using (var staged = new FileStream(Path.Combine(s3.StagingFolder, "pending", "0001.qcow2"), FileMode.Open, FileAccess.Write))
                {
                    staged.Seek(-1, SeekOrigin.End);
                    staged.WriteByte(0xa5);
                }

                break;
        }

        var again = await s3.StrataAsync(args);

        Assert.True(again.ExitCode == 0, $"seed {seed}: {again}");
        string line = Assert.Single(again.Stderr.Trim().Split('\n'));
        Assert.Matches("^strata backup: " + System.Text.RegularExpressions.Regex.Escape(expected).Replace(@"\*", ".*", StringComparison.Ordinal) + "$", line);
        Assert.Contains("point 1 (incremental on point 0)", again.Stdout, StringComparison.Ordinal);
        await AssertSetAsync(s3, seed, 2);
    }

    [Fact]
    public async Task AnIncrementalChainWithAResumedPointInTheMiddleRestoresEachPointExactly()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 30));
        string[] args = await s3.NextPointAsync(seed, 30, fill: 24 << 20);
        await KillAfterPartOneAsync(s3, args, seed);
        var resumed = await s3.StrataAsync(args);
        Assert.True(resumed.ExitCode == 0, $"seed {seed}: {resumed}");
        Assert.Contains("resumed point 1 of an interrupted backup", resumed.Stderr, StringComparison.Ordinal);

        // The resumed point recorded the bitmaps tracking the disk when the killed run staged it, so
        // the next points follow it by the incremental rule as if that run had finished.
        for (int point = 2; point < 4; point++)
        {
            var made = await s3.StrataAsync(await s3.NextPointAsync(seed, 30));
            Assert.True(made.ExitCode == 0, $"seed {seed}: {made}");
            Assert.Contains($"point {point} (incremental on point {point - 1})", made.Stdout, StringComparison.Ordinal);
        }

        await AssertSetAsync(s3, seed, 4);
    }

    /// <summary>Makes point 0 and returns the arguments of point 1: an incremental of two parts.</summary>
    private static async Task<string[]> TwoPartIncrementalAsync(S3Fixture s3, int seed)
    {
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 10));
        return await s3.NextPointAsync(seed, 20, fill: 24 << 20);
    }

    /// <summary>
    /// Runs the backup through a relay that holds part 2 of its upload, waits until the store lists
    /// part 1, then kills it (SIGKILL): its point is staged, its upload half done.
    /// </summary>
    private static async Task KillAfterPartOneAsync(S3Fixture s3, string[] args, int seed)
    {
        await using var proxy = GatewayProxy.StoppingPart(s3.Cluster.S3Endpoint, 2, dropOnTrip: false);
        await using var backup = BackgroundProcess.Start(Processes.DotnetHost(), [Processes.StrataDll, .. args],
            new ProcessOptions { Environment = s3.Environment(proxy.Url) });
        var asked = await Task.WhenAny(proxy.Tripped, Task.Delay(TimeSpan.FromMinutes(2)));
        Assert.True(asked == proxy.Tripped, $"seed {seed}: the backup never sent part 2\n{backup}");
        for (int poll = 0; (await s3.StoredPartsAsync()) is not [1]; poll++)
        {
            Assert.True(poll < 1200, $"seed {seed}: part 1 never reached the store\n{backup}");
            await Task.Delay(100);
        }

        await backup.KillAsync();
        Assert.Equal([1], await s3.StoredPartsAsync());
    }

    /// <summary>The set has <paramref name="points"/> points, no upload in progress, verifies, and restores each point to the disk as it was then.</summary>
    private static async Task AssertSetAsync(S3Fixture s3, int seed, int points)
    {
        var list = await s3.StrataOkAsync("backup", "list", s3.Set, "--output=json");
        using (var listed = JsonDocument.Parse(list.Stdout))
        {
            Assert.True(listed.RootElement.GetArrayLength() == points, $"seed {seed}: {list}");
        }

        Assert.Empty(await s3.UploadsAsync());
        var verify = await s3.StrataAsync(["backup", "verify", s3.Set]);
        Assert.True(verify.ExitCode == 0, $"seed {seed}: {verify}");
        for (int point = 0; point < points; point++)
        {
            await s3.AssertRestoresAsync(point, $"seed {seed}");
        }
    }
}
