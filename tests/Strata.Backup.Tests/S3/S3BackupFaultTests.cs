using Strata.TestKit;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// Faults during a backup into the S3 store, staged by a relay between strata and the gateway once
/// the image upload has begun: the backup killed mid-upload (the next run aborts the upload and
/// makes the point again), the gateway unreachable for a moment (the retries ride it out) and for
/// good (one line, exit 3, no point). Nothing half uploaded is ever listed or restored.
/// </summary>
public sealed class S3BackupFaultTests
{
    /// <summary>Past the manifests' and listings' few kilobytes: the image's parts are on their way.</summary>
    private const long IntoTheUpload = 12 << 20;

    [Fact]
    public async Task ABackupKilledDuringItsMultipartUploadIsNeverListedAndTheNextRunRedoesIt()
    {
        int seed = Workload.NewSeed();
        using var s3 = new S3Fixture();
        await s3.StrataOkAsync(await s3.NextPointAsync(seed, 10));
        string[] args = await s3.NextPointAsync(seed, 20, fill: 24 << 20); // 24 MiB: a multipart upload of two parts
        await using (var proxy = new GatewayProxy(s3.Cluster.S3Endpoint, IntoTheUpload, dropOnTrip: false))
        {
            await using var backup = BackgroundProcess.Start(Processes.DotnetHost(), [Processes.StrataDll, .. args],
                new ProcessOptions { Environment = s3.Environment(proxy.Url) });
            await WaitAsync(proxy.Tripped, backup);
            await backup.KillAsync();
        }

        Assert.Equal(["vm/disk0/0001.qcow2"], await s3.UploadsAsync());
        var list = await s3.StrataOkAsync("backup", "list", s3.Set);
        Assert.DoesNotContain("0001", list.Stdout, StringComparison.Ordinal);

        var again = await s3.StrataAsync(args);

        Assert.True(again.ExitCode == 0, $"seed {seed}: {again}");
        Assert.Contains("removed what an interrupted backup left: 0001.qcow2 (an upload in progress)", again.Stderr, StringComparison.Ordinal);
        Assert.Contains("point 1 (incremental on point 0)", again.Stdout, StringComparison.Ordinal);
        Assert.Empty(await s3.UploadsAsync());
        Assert.Equal(0, (await s3.StrataAsync(["backup", "verify", s3.Set])).ExitCode);
        await s3.AssertRestoresAsync(1, $"seed {seed}");
    }

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
