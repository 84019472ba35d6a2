using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Amazon.S3;
using Amazon.S3.Model;
using Strata.Block;
using Strata.Block.Drivers;
using Strata.Formats;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Backup.Stores;

/// <summary>
/// A backup set kept as objects under <c>s3://BUCKET/PREFIX</c>: the same files as a folder set
/// (<c>NNNN.qcow2</c>, <c>NNNN.json</c>), so any S3 tool can fetch a point and <c>qemu-img</c>
/// restore it. Reading (list, verify, restore) goes straight to the objects: manifests are fetched,
/// images are opened through the <c>s3</c> protocol driver and read with ranged GETs, backing chain
/// included. Writing a point stages it locally, then uploads it.
/// </summary>
/// <remarks>
/// <para>Invariant, as in a folder: a point exists exactly when its manifest object does. A new
/// point's image is made in a local staging folder by <see cref="BackupWriter"/> (an incremental's
/// backing file there is a small qcow2 whose own backing file is the previous point's object, so only
/// what the copy and the hashing need is read, with ranged GETs); the image is uploaded
/// (<see cref="S3MultipartUpload"/>: the object appears whole or not at all), then the manifest is
/// PUT, which is atomic. Nothing lists or restores an image past the last manifest, since readers go
/// by the manifests.</para>
/// <para>Once its point is completely staged, a writer moves the image and manifest into
/// <c>pending/</c>, begins the upload and records it there (<see cref="S3PendingPoint"/>). A writer
/// that stops after that (killed, the store gone through the retries, cancelled) leaves the upload
/// in progress and the point staged; the next writer of the set on this host continues it
/// (<see cref="ResumeAsync"/>) and ends with that point, or, when anything does not match, aborts
/// it, says why and makes its own point. Anything else a dead writer left (an unrecorded upload, an
/// image object past the last manifest) is aborted or deleted before a point is made.</para>
/// <para>The staging folder of a writer is one per set on this host (in the temporary folder, named by a
/// hash of the address) and is held by a lock file, so two writers of one set on one host do not
/// mix; what a killed writer left there but a pending point is emptied by the next, and a writer that
/// ends removes it unless a point is pending. Readers stage only the manifests, in a folder of their own.</para>
/// </remarks>
public sealed class S3BackupStore : IBackupStore
{
    private const string LockName = ".lock";

    private readonly S3Location _location;
    private readonly S3Connection _connection;
    private readonly DriverRegistry _drivers;
    private readonly string _staging;
    private readonly FileStream? _lock;
    /// <summary>The set's objects as listed when the store was opened, and those a resumed point added since.</summary>
    private readonly List<string> _names;

    /// <summary>
    /// Once a writer has settled what a stopped one left (<see cref="FinishInterruptedAsync"/>): what
    /// it removed (null: not looked for yet), and why a pending point was not resumed.
    /// </summary>
    private (List<string>? Removed, string? NotResumed)? _settled;

    private S3BackupStore(S3Location location, S3Connection connection, string staging, FileStream? writerLock, List<string> names, BackupSet set)
    {
        _location = location;
        _connection = connection;
        _drivers = StandardDrivers.Registry.With(new S3ProtocolDriver(connection));
        _staging = staging;
        _lock = writerLock;
        _names = names;
        Set = set;
    }

    public BackupSet Set { get; private set; }

    /// <summary>The registry readers of this store's images open them with: the standard drivers and <c>s3</c>.</summary>
    public DriverRegistry Drivers => _drivers;

    /// <summary>Opens the set at <paramref name="location"/>, taking ownership of <paramref name="connection"/>.</summary>
    public static async Task<S3BackupStore> OpenAsync(S3Location location, S3Connection connection, bool forWriting, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(connection);
        string staging = forWriting ? StagingFolder(location) : Path.Combine(Path.GetTempPath(), $"strata-s3-read-{Guid.NewGuid():N}");
        FileStream? writerLock = null;
        try
        {
            Directory.CreateDirectory(staging);
            if (forWriting)
            {
                writerLock = TakeLock(location, staging);
                EmptyButLockAndPending(staging);
            }

            var names = await ListAsync(connection, location, cancellationToken);
            for (int point = 0; names.Contains(BackupSet.ManifestName(point)); point++)
            {
                string name = BackupSet.ManifestName(point);
                byte[] manifest = await GetAsync(connection, location, name, cancellationToken);
                await File.WriteAllBytesAsync(Path.Combine(staging, name), manifest, cancellationToken);
            }

            var set = BackupSet.Open(staging);
            return new S3BackupStore(location, connection, staging, writerLock, [.. names.Order(StringComparer.Ordinal)], set);
        }
        catch
        {
            writerLock?.Dispose();
            DeleteQuietly(staging);
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Eight 4 MiB ranged GETs in flight: a GET waits for the gateway's first byte, which other GETs hide.</summary>
    public int ReadParallelism => 8;

    public string Locate(string name) => _location.Address(name);

    public async Task<IBlockNode> OpenPointAsync(BackupManifest point, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(point);
        return await ImageOpener.OpenAsync(Locate(point.Image), new ImageOpenOptions
        {
            Drivers = _drivers, Format = Qcow2FormatDriver.FormatName, ReadOnly = true, Permissions = BitmapFileReader.SharedReading,
        }, cancellationToken);
    }

    /// <remarks>
    /// A point a stopped writer left pending is finished first, and this run ends with it
    /// (<see cref="FinishInterruptedAsync"/>), unless the caller finished it already.
    /// </remarks>
    public async Task<BackupResult> CreateAsync(BackupRequest request, Action<double>? percent = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (await FinishInterruptedAsync(percent, cancellationToken) is { } resumed)
        {
            return resumed with { Resume = resumed.Resume + "; this run made no other point" };
        }

        var (removed, notResumed) = _settled!.Value;
        removed ??= await RemoveHalfMadeAsync(cancellationToken);
        if (request.Bitmap is not null && Set.Last is { } last)
        {
            await StageBaseAsync(last, cancellationToken);
        }

        byte[]? lastManifest = LastManifest();

        // The local copy and hashing count for the first half of the progress, the upload for the second.
        var made = await BackupWriter.CreateAsync(_staging, request with { Drivers = _drivers }, p => percent?.Invoke(p / 2), cancellationToken);
        var manifest = made.Manifest;
        var (image, staged) = S3PendingPoint.Stage(_staging, manifest.Point);
        var (size, modified) = S3PendingPoint.Stat(image);
        long partSize = S3MultipartUpload.PartSize(size);
        string key = _location.Key(manifest.Image);
        string? uploadId = size > partSize ? await S3MultipartUpload.StartAsync(_connection, _location.Bucket, key, cancellationToken) : null;
        var pending = S3PendingPoint.Commit(_staging, new PendingUpload
        {
            Set = _location.ToString(), Point = manifest.Point, Key = key, UploadId = uploadId, PartSize = partSize, Size = size, Modified = modified,
            ManifestSha256 = S3PendingPoint.Fingerprint(await File.ReadAllBytesAsync(staged, cancellationToken)),
            BaseSha256 = lastManifest is null ? null : S3PendingPoint.Fingerprint(lastManifest), BytesCopied = made.BytesCopied,
        });
        long total = Math.Max(1, size);
        long sent = 0;
        await FinishAsync(pending, new Dictionary<int, string>(), bytes => percent?.Invoke(50 + ((sent += bytes) * 50.0 / total)), cancellationToken);
        Set = made.Set;
        return made with { Removed = [.. removed, .. made.Removed], Resume = notResumed };
    }

    /// <summary>
    /// Settles what a stopped writer left, once per writer: finishes the point it left pending
    /// (<see cref="ResumeAsync"/>) and returns it, or, when that point does not match, drops it;
    /// then removes what else it left in the store. Null when no point was finished.
    /// </summary>
    public async Task<BackupResult?> FinishInterruptedAsync(Action<double>? percent = null, CancellationToken cancellationToken = default)
    {
        if (_lock is null)
        {
            throw new InvalidOperationException("the store was opened for reading");
        }

        if (_settled is not null)
        {
            return null;
        }

        string? notResumed = null;
        var (pending, problem) = S3PendingPoint.Read(_staging);
        if (pending is not null)
        {
            problem = pending.Mismatch(_location, Set, LastManifest());
            if (problem is null)
            {
                var resumed = await ResumeAsync(pending, percent, cancellationToken);
                if (resumed.Result is not null)
                {
                    // What else a dead writer left is numbered past the resumed point: removed before a point is made on it.
                    _settled = (null, null);
                    return resumed.Result;
                }

                problem = resumed.Problem;
            }

            notResumed = $"point {pending.Record.Point} of an interrupted backup was not resumed: {problem}; its upload is dropped and this run makes its point anew";
            if (pending.Record.UploadId is { } id)
            {
                await S3MultipartUpload.AbortQuietlyAsync(_connection, _location.Bucket, pending.Record.Key, id);
            }
        }
        else if (problem is not null)
        {
            notResumed = $"an interrupted backup was not resumed: {problem}; this run makes its point anew";
        }

        S3PendingPoint.Discard(_staging);
        _settled = (await RemoveHalfMadeAsync(cancellationToken), notResumed);
        return null;
    }

    /// <remarks>
    /// The staging folder goes, lock file and all, while the lock is still held: a writer that opens
    /// it later makes a new one. A point whose upload did not finish stays staged, for the next writer to continue.
    /// </remarks>
    public async ValueTask DisposeAsync()
    {
        if (_lock is not null && S3PendingPoint.IsRecorded(_staging))
        {
            EmptyButLockAndPending(_staging);
        }
        else
        {
            DeleteQuietly(_staging);
        }

        if (_lock is not null)
        {
            await _lock.DisposeAsync();
        }

        _connection.Dispose();
    }

    /// <summary>
    /// Continues the upload of the point a stopped writer staged: lists the parts the store holds,
    /// sends the rest (<see cref="S3MultipartUpload.SendAsync"/> keeps a part only when its ETag is
    /// the MD5 of the staged bytes), completes, PUTs the manifest. The point is the dead run's, a
    /// moment of its own: this run ends with it (docs/backup.md, "After a crash").
    /// </summary>
    private async Task<(BackupResult? Result, string? Problem)> ResumeAsync(S3PendingPoint pending, Action<double>? percent, CancellationToken cancellationToken)
    {
        var record = pending.Record;
        IReadOnlyDictionary<int, string>? stored = new Dictionary<int, string>();
        if (record.UploadId is { } uploadId)
        {
            stored = await S3MultipartUpload.ListPartsAsync(_connection, new S3Upload(_location.Bucket, record.Key, uploadId, record.PartSize), cancellationToken);
            if (stored is null && !await IsCompleteAsync(pending, cancellationToken))
            {
                return (null, "its upload is gone from the store (aborted or expired)");
            }
        }

        var manifest = pending.ReadManifest();
        long total = Math.Max(1, record.Size);
        long sent = 0;
        int? kept = await FinishAsync(pending, stored, bytes => percent?.Invoke((sent += bytes) * 100.0 / total), cancellationToken);
        int parts = S3MultipartUpload.PartCount(record.Size, record.PartSize);
        string how = record.UploadId is null ? "its image went up again in one request"
            : kept is { } n ? $"{n} of {parts} parts were already in the store"
            : "its image was already complete in the store";
        Set = BackupSet.Open(_staging);
        _names.AddRange([BackupSet.ImageName(record.Point), BackupSet.ManifestName(record.Point)]);
        string taken = manifest.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
        string line = $"resumed point {record.Point} of an interrupted backup (taken {taken} UTC): {how}";
        return (new BackupResult(Set, manifest, [], record.BytesCopied) { Resume = line }, null);
    }

    /// <summary>
    /// Sends what the store lacks of a pending point's image (<paramref name="stored"/>: the parts it
    /// holds; null: the image object is already complete), completes the upload and PUTs the
    /// manifest, which makes the point. Returns how many parts were kept (null when none were sent).
    /// A failure leaves the upload in progress and the pending point staged, for the next writer to continue.
    /// </summary>
    private async Task<int?> FinishAsync(S3PendingPoint pending, IReadOnlyDictionary<int, string>? stored, Action<long> done, CancellationToken cancellationToken)
    {
        var record = pending.Record;
        int? kept = null;
        if (record.UploadId is null)
        {
            await S3MultipartUpload.PutFileAsync(_connection, _location.Bucket, record.Key, pending.ImagePath, cancellationToken);
            done(record.Size);
        }
        else if (stored is not null)
        {
            kept = await S3MultipartUpload.SendAsync(_connection, new S3Upload(_location.Bucket, record.Key, record.UploadId, record.PartSize),
                pending.ImagePath, stored, done, cancellationToken);
        }

        string name = BackupSet.ManifestName(record.Point);
        await S3MultipartUpload.PutAsync(_connection, _location.Bucket, _location.Key(name), await File.ReadAllBytesAsync(pending.ManifestPath, cancellationToken), cancellationToken);
        File.Move(pending.ManifestPath, Path.Combine(_staging, name), overwrite: true);
        S3PendingPoint.Discard(_staging);
        return kept;
    }

    /// <summary>
    /// Whether the pending point's image object is in the store whole: its upload was completed by a
    /// run that died before the manifest went up. Told by the ETag a multipart upload of the staged
    /// file makes, never by the size alone.
    /// </summary>
    private async Task<bool> IsCompleteAsync(S3PendingPoint pending, CancellationToken cancellationToken)
    {
        var record = pending.Record;
        try
        {
            var head = await _connection.Retry.RunAsync($"{_location.Address(BackupSet.ImageName(record.Point))}: looking at the image", token =>
                _connection.Client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _location.Bucket, Key = record.Key }, token), cancellationToken);
            return head.ETag is { } etag && S3MultipartUpload.SameETag(etag, S3MultipartUpload.MultipartETag(pending.ImagePath, record.PartSize));
        }
        catch (BackupException e) when (e.InnerException is AmazonS3Exception { StatusCode: HttpStatusCode.NotFound })
        {
            return false;
        }
    }

    /// <summary>The bytes of the set's last manifest, as fetched when the store was opened; null for an empty set.</summary>
    private byte[]? LastManifest() => Set.Last is { } last ? File.ReadAllBytes(Path.Combine(_staging, BackupSet.ManifestName(last.Point))) : null;

    /// <summary>
    /// Aborts the multipart uploads in progress under the set and deletes image objects numbered past
    /// the last manifest: what a writer that died left. Returns what it removed, for the user.
    /// </summary>
    private async Task<List<string>> RemoveHalfMadeAsync(CancellationToken cancellationToken)
    {
        var removed = new List<string>();
        string? keyMarker = null;
        string? uploadMarker = null;
        for (int page = 0; page < 1000; page++)
        {
            var listed = await _connection.Retry.RunAsync($"{_location}: listing uploads in progress", token =>
                _connection.Client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest
                {
                    BucketName = _location.Bucket, Prefix = _location.KeyPrefix, KeyMarker = keyMarker, UploadIdMarker = uploadMarker,
                }, token), cancellationToken);
            foreach (var upload in listed.MultipartUploads ?? [])
            {
                if (NameOf(upload.Key) is { } name && IsPastLast(name))
                {
                    await _connection.Retry.RunAsync($"{Locate(name)}: aborting an interrupted upload", token =>
                        _connection.Client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest
                        {
                            BucketName = _location.Bucket, Key = upload.Key, UploadId = upload.UploadId,
                        }, token), cancellationToken);
                    removed.Add($"{name} (an upload in progress)");
                }
            }

            if (listed.IsTruncated != true)
            {
                break;
            }

            (keyMarker, uploadMarker) = (listed.NextKeyMarker, listed.NextUploadIdMarker);
        }

        foreach (string name in _names.Where(IsPastLast))
        {
            await _connection.Retry.RunAsync($"{Locate(name)}: deleting", token =>
                _connection.Client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _location.Bucket, Key = _location.Key(name) }, token), cancellationToken);
            removed.Add(name);
        }

        return removed;
    }

    /// <summary>An image numbered at or past the next point: what only a writer that died leaves (manifests are PUT whole, last).</summary>
    private bool IsPastLast(string name)
    {
        string number = name.EndsWith(".qcow2", StringComparison.Ordinal) ? name[..^".qcow2".Length] : "";
        return number.Length == 4 && int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out int point) && point >= Set.Points.Count;
    }

    /// <summary>The set's file name of <paramref name="key"/>, or null for a key deeper under the prefix.</summary>
    private string? NameOf(string key) =>
        key.StartsWith(_location.KeyPrefix, StringComparison.Ordinal) && key[_location.KeyPrefix.Length..] is { Length: > 0 } name && !name.Contains('/', StringComparison.Ordinal)
            ? name : null;

    /// <summary>
    /// Puts the last point's image into the staging folder as the writer expects it, as an empty
    /// qcow2 whose backing file is the point's object: an incremental's copy and hashing read through
    /// it with ranged GETs, and the new image records the plain relative name, right in the bucket.
    /// A missing object is left missing, for the writer to refuse the incremental.
    /// </summary>
    private async Task StageBaseAsync(BackupManifest last, CancellationToken cancellationToken)
    {
        if (!_names.Contains(last.Image))
        {
            return;
        }

        var plan = await ImageCreator.PlanAsync(_drivers, Path.Combine(_staging, last.Image), Qcow2FormatDriver.FormatName, last.Size,
            Locate(last.Image), Qcow2FormatDriver.FormatName, [], cancellationToken);
        await ImageCreator.CreateAsync(plan, FileCreation.New, cancellationToken);
    }

    private static async Task<HashSet<string>> ListAsync(S3Connection connection, S3Location location, CancellationToken cancellationToken)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        string? continuation = null;
        for (int page = 0; page < 10_000; page++)
        {
            var listed = await connection.Retry.RunAsync(location.ToString(), token => connection.Client.ListObjectsV2Async(new ListObjectsV2Request
            {
                BucketName = location.Bucket, Prefix = location.KeyPrefix, Delimiter = "/", ContinuationToken = continuation,
            }, token), cancellationToken);
            foreach (var o in listed.S3Objects ?? [])
            {
                names.Add(o.Key[location.KeyPrefix.Length..]);
            }

            if (listed.IsTruncated != true)
            {
                break;
            }

            continuation = listed.NextContinuationToken;
        }

        return names;
    }

    private static async Task<byte[]> GetAsync(S3Connection connection, S3Location location, string name, CancellationToken cancellationToken) =>
        await connection.Retry.RunAsync(location.Address(name), async token =>
        {
            using var response = await connection.Client.GetObjectAsync(new GetObjectRequest { BucketName = location.Bucket, Key = location.Key(name) }, token);
            using var content = new MemoryStream();
            await response.ResponseStream.CopyToAsync(content, token);
            return content.ToArray();
        }, cancellationToken);

    /// <summary>
    /// The default state folder of a live backup of this set on this host: under
    /// <c>$XDG_STATE_HOME/strata/drive-state/</c> (<c>~/.local/state/strata/drive-state/</c> when unset),
    /// named <see cref="DriveStateName"/>. Marked as this set's at this endpoint, so a <c>--state</c>
    /// given for another set is refused.
    /// </summary>
    public DriveState OpenDriveState(string? folder = null, bool create = true)
    {
        string path = folder ?? Path.Combine(StateHome(), "strata", "drive-state", DriveStateName(_location, _connection.Endpoint));
        return create ? DriveState.Open(path, _location.ToString(), $"{_location} at {_connection.Endpoint}") : DriveState.Peek(path, _location.ToString());
    }

    /// <summary>
    /// The default state folder's name: the bucket and a hash of the endpoint, bucket and prefix, so
    /// it is the same on every run for one set on this host and differs for a set of the same name
    /// elsewhere (another endpoint).
    /// </summary>
    public static string DriveStateName(S3Location location, string endpoint)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(endpoint);
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(endpoint + "\n" + location)))[..16];
        return $"{location.Bucket}-{hash}";
    }

    /// <summary>The XDG base directory for state data (the XDG Base Directory specification: $XDG_STATE_HOME, default ~/.local/state).</summary>
    private static string StateHome() =>
        Environment.GetEnvironmentVariable("XDG_STATE_HOME") is { Length: > 0 } home && Path.IsPathRooted(home) ? home
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile, Environment.SpecialFolderOption.DoNotVerify), ".local", "state");

    /// <summary>Where a writer of the set at <paramref name="location"/> stages its points on this host.</summary>
    public static string StagingFolder(S3Location location)
    {
        ArgumentNullException.ThrowIfNull(location);
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(location.ToString())))[..16];
        return Path.Combine(Path.GetTempPath(), $"strata-s3-{hash}");
    }

    /// <summary>The writer's lock: an exclusive open, which .NET takes as an advisory lock (flock) that dies with the process.</summary>
    private static FileStream TakeLock(S3Location location, string staging)
    {
        try
        {
            return new FileStream(Path.Combine(staging, LockName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new BackupException($"{location}: another backup of this set is running on this host", e);
        }
    }

    private static void EmptyButLockAndPending(string staging)
    {
        foreach (string path in Directory.EnumerateFileSystemEntries(staging))
        {
            string name = Path.GetFileName(path);
            if (name != LockName && !S3PendingPoint.IsFolder(name))
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }
                else
                {
                    File.Delete(path);
                }
            }
        }
    }

    private static void DeleteQuietly(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A staging folder in temp: the next writer of the set empties it.
        }
    }
}
