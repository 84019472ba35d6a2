using Strata.TestKit;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// Faults during a backup into the S3 store, staged by a relay between strata and the gateway once
/// the image upload has begun: the gateway unreachable for a moment (the retries ride it out) and for
/// good (one line, exit 3, no point). Nothing half uploaded is ever listed or restored. A backup
/// killed or cut off mid-upload and continued by the next run: <see cref="S3BackupResumeTests"/>.
/// </summary>
public sealed class S3BackupFaultTests
{
    /// <summary>Past the manifests' and listings' few kilobytes: the image's parts are on their way.</summary>
    private const long IntoTheUpload = 12 << 20;

    [Fact]
    public async Task AGatewayUnreachableForAMomentDuringTheUploadIsRiddenOutByTheRetries()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        string[] args = await s3.NextPointAsync(seed, 0);
        QemuIo.Ok(s3.Disk, "raw", "write -P 0x77 4M 24M");
        File.Copy(s3.Disk, s3.References[0], overwrite: true);
        await using var proxy = new GatewayProxy(s3.Cluster.S3Endpoint, IntoTheUpload, dropOnTrip: true);
        var backup = s3.StrataAsync(args, s3.Environment(proxy.Url));

        await WaitAsync(proxy.Tripped, null);
        await Task.Delay(TimeSpan.FromSeconds(1)); // shorter than the retries' first pauses together (0.5 + 1 + 2 s)
        proxy.Restore();
        var result = await backup;

        Assert.True(result.ExitCode == 0, $"seed {seed}: {result}");
        Assert.Empty(await s3.UploadsAsync());
        Assert.Equal(0, (await s3.StrataAsync(["backup", "verify", s3.Set])).ExitCode);
        await s3.AssertRestoresAsync(0, $"seed {seed}");
    }

    [Fact]
    public async Task AGatewayThatStaysUnreachableFailsTheBackupWithOneLineAndExitStatus3AndNoPoint()
    {
        using var s3 = new S3Fixture();
        string[] args = await s3.NextPointAsync(0, 0);
        QemuIo.Ok(s3.Disk, "raw", "write -P 0x77 4M 24M");
        await using var proxy = new GatewayProxy(s3.Cluster.S3Endpoint, IntoTheUpload, dropOnTrip: true);

        var result = await s3.StrataAsync(args, s3.Environment(proxy.Url));

        Assert.True(result.ExitCode == 3, result.ToString());
        string line = Assert.Single(result.Stderr.Trim().Split('\n'));
        Assert.Matches(@"^strata backup: s3://\S+/0000\.qcow2: part \d+ of \d+: the store did not answer after 6 attempt\(s\): ", line);
        Assert.DoesNotContain("0000.json", string.Join(' ', await s3.KeysAsync()), StringComparison.Ordinal);
        var list = await s3.StrataOkAsync("backup", "list", s3.Set, "--output=json");
        Assert.Equal("[]", list.Stdout.Trim());
    }

    /// <summary>Waits for the relay to trip, failing with the backup's story if it ends first or never gets there.</summary>
    private static async Task WaitAsync(Task tripped, BackgroundProcess? backup)
    {
        var done = await Task.WhenAny(tripped, Task.Delay(TimeSpan.FromMinutes(2)));
        Assert.True(done == tripped, $"the upload never got {IntoTheUpload} bytes through the relay\n{backup}");
    }
}
