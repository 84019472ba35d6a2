using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Strata.Backup.Stores;
using Strata.Block.Bitmaps;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// What the S3 tests share: a fresh bucket per test in the run's Ceph gateway
/// (<see cref="CephCluster.Shared"/>), a client of their own to look at the objects, the strata CLI
/// run as a process with the store's settings in its environment (and no ~/.aws of the developer's),
/// ($XDG_STATE_HOME too), and a disk with tracked dirty_bitmap files that makes a full point and incrementals (the seed's flow).
/// </summary>
internal sealed class S3Fixture : IDisposable
{
    public const long Size = 32 << 20;
    private const long Granularity = 4096;

    private readonly TempFolder _folder = new("bs3");
    private readonly List<IBitmapStore> _trackers = [];
    private DirtyBitmap _bits = new(Size, Granularity);

    public S3Fixture()
    {
        Cluster = CephCluster.Shared;
        Client = new AmazonS3Client(new BasicAWSCredentials(Cluster.AccessKey, Cluster.SecretKey), new AmazonS3Config
        {
            ServiceURL = Cluster.S3Endpoint, ForcePathStyle = true, AuthenticationRegion = "us-east-1",
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED, ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        });
        Bucket = CephCluster.UniqueName("bset");
        Client.PutBucketAsync(Bucket).GetAwaiter().GetResult();
        Set = $"s3://{Bucket}/vm/disk0";
        Disk = _folder.File("disk.img");
        Processes.Ok("qemu-img", "create", "-f", "raw", Disk, $"{Size}");
    }

    public CephCluster Cluster { get; }

    public AmazonS3Client Client { get; }

    public string Bucket { get; }

    /// <summary>s3://BUCKET/vm/disk0.</summary>
    public string Set { get; }

    /// <summary>The raw disk the points are taken of.</summary>
    public string Disk { get; }

    /// <summary>A copy of the disk as it was at each point.</summary>
    public List<string> References { get; } = [];

    /// <summary>Where strata stages the set's points on this host (a point whose upload did not finish stays there in pending/).</summary>
    public string StagingFolder => S3BackupStore.StagingFolder(Stores.S3Location.Parse(Set));

    public string File(string name) => _folder.File(name);

    /// <summary>$XDG_STATE_HOME of the CLI: a live backup's default state folder is under it.</summary>
    public string StateHome => _folder.File("state-home");

    /// <summary>The default state folder of a live backup of the set (<c>S3BackupStore.OpenDriveState</c>).</summary>
    public string DefaultDriveState =>
        Path.Combine(StateHome, "strata", "drive-state", S3BackupStore.DriveStateName(Stores.S3Location.Parse(Set), Cluster.S3Endpoint));

    /// <summary>The CLI's environment: the cluster's settings, the endpoint possibly replaced (a proxy), no home folder settings.</summary>
    public Dictionary<string, string?> Environment(string? endpoint = null, string? secret = null)
    {
        var environment = Cluster.Environment.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        environment["AWS_ENDPOINT_URL"] = endpoint ?? Cluster.S3Endpoint;
        environment["AWS_SECRET_ACCESS_KEY"] = secret ?? Cluster.SecretKey;
        environment["HOME"] = _folder.Path;
        environment["XDG_STATE_HOME"] = StateHome;
        environment["AWS_EC2_METADATA_DISABLED"] = "true";
        return environment;
    }

    public Task<ProcessResult> StrataAsync(IEnumerable<string> args, Dictionary<string, string?>? environment = null) =>
        Processes.StrataAsync(args, new ProcessOptions { Environment = environment ?? Environment(), Timeout = TimeSpan.FromMinutes(3) });

    public async Task<ProcessResult> StrataOkAsync(params string[] args) => (await StrataAsync(args)).AssertSuccess();

    /// <summary>
    /// Writes seeded data into the disk, records what a point should restore and, after
    /// the first point, stops the tracking bitmap (saved Frozen) as the seed's switch does, with the
    /// next one tracking. Returns the <c>backup create</c> arguments for the point: full the first
    /// time, incremental with the stopped bitmap after.
    /// </summary>
    /// <param name="seed">The workload's seed (the point's number is added).</param>
    /// <param name="writes">How many seeded writes, discards and zeroings.</param>
    /// <param name="fill">Bytes of seeded data written from 4 MiB on as well, for a point of a known size.</param>
    public async Task<string[]> NextPointAsync(int seed, int writes, int fill = 0)
    {
        int point = References.Count;
        if (point > 0)
        {
            await using var node = await ImageOpener.OpenAsync(Disk, new ImageOpenOptions { Format = "raw", ReadOnly = false });
            foreach (var op in Workload.Generate(seed + point, Size, writes))
            {
                await op.ApplyAsync(node);
                if (op.Kind != DiskOpKind.Flush)
                {
                    _bits.Set(op.Offset, op.Length);
                }
            }

            if (fill > 0)
            {
                await node.WriteAsync(4 << 20, Workload.Pattern(new Random(seed), fill));
                _bits.Set(4 << 20, fill);
            }
        }
        else
        {
            QemuIo.Ok(Disk, "raw", "write -P 0x5a 1M 3M");
        }

        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        var next = await files.CreateAsync(File($"t{point}.dbmp"), Size, Granularity);
        await next.BeginTrackingAsync();
        if (point > 0)
        {
            await _trackers[^1].SaveAsync(_bits, BitmapStoreState.Frozen);
            await _trackers[^1].DisposeAsync();
            _bits = new DirtyBitmap(Size, Granularity);
        }

        _trackers.Add(next);
        string reference = File($"ref{point}.img");
        System.IO.File.Copy(Disk, reference);
        References.Add(reference);
        return point == 0 ? ["backup", "create", Set, "--image", Disk] : ["backup", "create", Set, "--image", Disk, "--bitmap", File($"t{point - 1}.dbmp")];
    }

    /// <summary>The keys under the set's prefix.</summary>
    public async Task<List<string>> KeysAsync()
    {
        var listed = await Client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket, Prefix = "vm/disk0/" });
        return [.. (listed.S3Objects ?? []).Select(o => o.Key).Order(StringComparer.Ordinal)];
    }

    /// <summary>The multipart uploads in progress under the set.</summary>
    public async Task<List<string>> UploadsAsync()
    {
        var listed = await Client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = Bucket, Prefix = "vm/disk0/" });
        return [.. (listed.MultipartUploads ?? []).Select(u => u.Key)];
    }

    /// <summary>The part numbers the store holds of the one multipart upload in progress under the set (none when there is none).</summary>
    public async Task<List<int>> StoredPartsAsync()
    {
        var listed = await Client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = Bucket, Prefix = "vm/disk0/" });
        if (listed.MultipartUploads is not [var upload])
        {
            return [];
        }

        var parts = await Client.ListPartsAsync(new ListPartsRequest { BucketName = Bucket, Key = upload.Key, UploadId = upload.UploadId });
        return [.. (parts.Parts ?? []).Select(p => p.PartNumber ?? 0).Order()];
    }

    /// <summary>Restores a point with strata straight from the store and compares it with the disk as it was then (qemu-img compare).</summary>
    public Task AssertRestoresAsync(int point, string seedNote) => AssertRestoresAsync(point, References[point], seedNote);

    /// <summary>Restores a point with strata straight from the store and compares it with <paramref name="reference"/>, the disk then (qemu-img compare).</summary>
    public async Task AssertRestoresAsync(int point, string reference, string seedNote)
    {
        string restored = File($"restored{point}-{Guid.NewGuid():N}.img");
        (await StrataAsync(["backup", "restore", Set, $"{point}", restored])).AssertSuccess();
        var compare = Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "raw", restored, reference);
        Assert.True(compare.ExitCode == 0, $"{seedNote}: point {point} restored from the store differs from the disk then:\n{compare}");
        System.IO.File.Delete(restored);
    }

    public void Dispose()
    {
        foreach (var tracker in _trackers)
        {
            tracker.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        Client.Dispose();
        _folder.Dispose();

        // What a backup that failed or was killed left staged for the next run to continue.
        string staging = StagingFolder;
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
    }
}
