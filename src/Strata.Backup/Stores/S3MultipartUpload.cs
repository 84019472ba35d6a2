using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using Amazon.S3;
using Amazon.S3.Model;

namespace Strata.Backup.Stores;

/// <summary>
/// Uploads a local file as one object: in one PUT when it is small (<see cref="PutFileAsync"/>), else
/// as a multipart upload (<see cref="StartAsync"/>, <see cref="SendAsync"/>) whose parts go up
/// concurrently (at most <see cref="Concurrency"/> at a time, each from a pooled buffer) and each
/// retried on its own under <see cref="S3Retry"/>. The object appears only when the upload is
/// completed, whole. An upload that fails is left in progress, so that the next writer of the set can
/// continue it (<see cref="ListPartsAsync"/>) or abort it (<see cref="S3BackupStore"/>).
/// </summary>
public static class S3MultipartUpload
{
    /// <summary>S3's smallest part but the last.</summary>
    public const long MinPartSize = 5L * 1024 * 1024;

    /// <summary>S3's most parts per upload.</summary>
    public const int MaxParts = 10_000;

    /// <summary>Parts in flight at once: four 16 MiB parts keep a gateway busy and hold 64 MiB.</summary>
    public const int Concurrency = 4;

    private const long DefaultPartSize = 16L * 1024 * 1024;

    /// <summary>The part size for an object of <paramref name="size"/> bytes: 16 MiB (256 parts for 4 GiB), larger only past S3's part count.</summary>
    public static long PartSize(long size)
    {
        const long MiB = 1024 * 1024;
        long needed = (size + MaxParts - 1) / MaxParts;
        return Math.Max(DefaultPartSize, (needed + MiB - 1) / MiB * MiB);
    }

    /// <summary>Begins a multipart upload to <paramref name="key"/>; returns its id.</summary>
    public static async Task<string> StartAsync(S3Connection connection, string bucket, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var started = await connection.Retry.RunAsync($"{S3Location.Scheme}{bucket}/{key}: starting the upload", token =>
            connection.Client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = bucket, Key = key }, token), cancellationToken);
        return started.UploadId;
    }

    /// <summary>
    /// Sends the parts of <paramref name="path"/> the store does not hold yet and completes the upload.
    /// A part in <paramref name="stored"/> (number to ETag, from <see cref="ListPartsAsync"/>) is kept
    /// only when its ETag is the MD5 of the same local byte range (S3's ETag of a part sent without
    /// server-side encryption by a customer key is its MD5): a part replaced or cut short in the store is sent again.
    /// </summary>
    /// <returns>How many parts were kept.</returns>
    public static async Task<int> SendAsync(S3Connection connection, S3Upload upload, string path, IReadOnlyDictionary<int, string> stored,
        Action<long>? done, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(upload);
        ArgumentNullException.ThrowIfNull(stored);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        long size = RandomAccess.GetLength(file);
        long partSize = upload.PartSize;
        int parts = PartCount(size, partSize);
        string address = $"{S3Location.Scheme}{upload.Bucket}/{upload.Key}";
        var etags = new PartETag[parts];
        int kept = 0;
        var progressLock = new Lock(); // serializes the calls of done
        await Parallel.ForEachAsync(Enumerable.Range(1, parts), new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = cancellationToken },
            async (number, token) =>
            {
                long offset = (number - 1) * partSize;
                int length = (int)Math.Min(partSize, size - offset);
                byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
                try
                {
                    int read = RandomAccess.Read(file, buffer.AsSpan(0, length), offset);
                    if (read != length)
                    {
                        throw new IOException($"{path}: short read at {offset}");
                    }

                    byte[] md5 = Md5(buffer.AsSpan(0, length));
                    if (stored.TryGetValue(number, out string? etag) && SameDigest(etag, md5))
                    {
                        etags[number - 1] = new PartETag(number, etag);
                        Interlocked.Increment(ref kept);
                    }
                    else
                    {
                        var response = await connection.Retry.RunAsync($"{address}: part {number} of {parts}", t =>
                            connection.Client.UploadPartAsync(new UploadPartRequest
                            {
                                BucketName = upload.Bucket, Key = upload.Key, UploadId = upload.UploadId, PartNumber = number,
                                InputStream = new MemoryStream(buffer, 0, length, writable: false), PartSize = length, MD5Digest = Convert.ToBase64String(md5),
                            }, t), token);
                        etags[number - 1] = new PartETag(number, response.ETag);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }

                lock (progressLock)
                {
                    done?.Invoke(length);
                }
            });
        await connection.Retry.RunAsync($"{address}: completing the upload", token =>
            connection.Client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = upload.Bucket, Key = upload.Key, UploadId = upload.UploadId, PartETags = [.. etags],
            }, token), cancellationToken);
        return kept;
    }

    /// <summary>The parts the store holds for an upload (number to ETag), every page of them; null when the upload is gone (aborted, expired or completed).</summary>
    public static async Task<Dictionary<int, string>?> ListPartsAsync(S3Connection connection, S3Upload upload, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(upload);
        var parts = new Dictionary<int, string>();
        string? marker = null;
        for (int page = 0; page <= MaxParts; page++)
        {
            ListPartsResponse listed;
            try
            {
                listed = await connection.Retry.RunAsync($"{S3Location.Scheme}{upload.Bucket}/{upload.Key}: listing the parts of the upload", token =>
                    connection.Client.ListPartsAsync(new ListPartsRequest
                    {
                        BucketName = upload.Bucket, Key = upload.Key, UploadId = upload.UploadId, PartNumberMarker = marker,
                    }, token), cancellationToken);
            }
            catch (BackupException e) when (e.InnerException is AmazonS3Exception { ErrorCode: "NoSuchUpload" or "NoSuchKey" })
            {
                // S3 says NoSuchUpload; Ceph RGW says NoSuchKey for an upload aborted or completed.
                return null;
            }

            foreach (var part in listed.Parts ?? [])
            {
                if (part.PartNumber is int number && part.ETag is { } etag)
                {
                    parts[number] = etag;
                }
            }

            if (listed.IsTruncated != true || listed.NextPartNumberMarker is null)
            {
                break;
            }

            marker = listed.NextPartNumberMarker.Value.ToString(CultureInfo.InvariantCulture);
        }

        return parts;
    }

    /// <summary>
    /// The ETag S3 gives the object a multipart upload of <paramref name="path"/> in parts of
    /// <paramref name="partSize"/> makes: the MD5 of the parts' MD5s, a dash and the part count. It
    /// tells an image a dead run completed (its manifest never PUT) from anything else under the key.
    /// </summary>
    public static string MultipartETag(string path, long partSize)
    {
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        long size = RandomAccess.GetLength(file);
        int parts = PartCount(size, partSize);
        byte[] digests = new byte[parts * 16];
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(partSize, size));
        try
        {
            for (int number = 0; number < parts; number++)
            {
                int length = (int)Math.Min(partSize, size - (number * partSize));
                _ = RandomAccess.Read(file, buffer.AsSpan(0, length), number * partSize);
                Md5(buffer.AsSpan(0, length)).CopyTo(digests, number * 16);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return $"{Convert.ToHexStringLower(Md5(digests))}-{parts}";
    }

    /// <summary>Whether an ETag as the store quotes it (<c>"…"</c>) is <paramref name="expected"/>, case aside.</summary>
    public static bool SameETag(string etag, string expected)
    {
        ArgumentNullException.ThrowIfNull(etag);
        return string.Equals(etag.Trim('"'), expected, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Writes a local file of at most one part in one PUT.</summary>
    public static async Task PutFileAsync(S3Connection connection, string bucket, string key, string path, CancellationToken cancellationToken) =>
        await PutAsync(connection, bucket, key, await File.ReadAllBytesAsync(path, cancellationToken), cancellationToken);

    public static int PartCount(long size, long partSize) => (int)((size + partSize - 1) / partSize);

    /// <summary>Writes a small object in one request (a PUT is atomic: the object is there whole or not at all).</summary>
    public static Task PutAsync(S3Connection connection, string bucket, string key, byte[] content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(content);
        string md5 = Convert.ToBase64String(Md5(content));
        return connection.Retry.RunAsync($"{S3Location.Scheme}{bucket}/{key}", token =>
            connection.Client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = bucket, Key = key, InputStream = new MemoryStream(content, writable: false), MD5Digest = md5, AutoCloseStream = true,
            }, token), cancellationToken);
    }

    /// <summary>Aborts an upload, best effort: what cannot be aborted now the next writer of the set aborts.</summary>
    public static async Task AbortQuietlyAsync(S3Connection connection, string bucket, string key, string uploadId)
    {
        ArgumentNullException.ThrowIfNull(connection);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await connection.Client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = bucket, Key = key, UploadId = uploadId }, timeout.Token);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Left for the next writer, which lists and aborts uploads in progress under the set.
        }
    }

    private static bool SameDigest(string etag, byte[] md5) => SameETag(etag, Convert.ToHexStringLower(md5));

    /// <summary>A body's MD5: its Content-MD5 header, which the store checks what arrived against (RFC 1864; S3 PutObject, UploadPart), and a plain part's ETag.</summary>
    [SuppressMessage("Security", "CA5351", Justification = "An integrity check the S3 API defines, not a security boundary: the requests are signed with SigV4.")]
    private static byte[] Md5(ReadOnlySpan<byte> body) => MD5.HashData(body);
}
