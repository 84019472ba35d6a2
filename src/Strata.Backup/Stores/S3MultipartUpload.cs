using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Amazon.S3.Model;

namespace Strata.Backup.Stores;

/// <summary>
/// Uploads a local file as one object: in one PUT when it is small, else as a multipart upload whose
/// parts go up concurrently (at most <see cref="Concurrency"/> at a time, each from a pooled buffer)
/// and each retried on its own under <see cref="S3Retry"/>. The object appears only when the upload
/// is completed, whole; a failure aborts the upload, and a process killed meanwhile leaves an
/// upload in progress that lists under the key and is aborted by the next writer of the set
/// (<see cref="S3BackupStore"/>).
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

    /// <summary>Uploads <paramref name="path"/> to <paramref name="key"/>; <paramref name="done"/> hears each part's bytes (calls never overlap).</summary>
    public static async Task UploadAsync(S3Connection connection, string bucket, string key, string path, Action<long>? done = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        long size = RandomAccess.GetLength(file);
        long partSize = PartSize(size);
        string address = $"{S3Location.Scheme}{bucket}/{key}";
        if (size <= partSize)
        {
            byte[] whole = new byte[size];
            _ = RandomAccess.Read(file, whole, 0);
            await PutAsync(connection, bucket, key, whole, cancellationToken);
            done?.Invoke(size);
            return;
        }

        var started = await connection.Retry.RunAsync($"{address}: starting the upload", token =>
            connection.Client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = bucket, Key = key }, token), cancellationToken);
        string uploadId = started.UploadId;
        try
        {
            int parts = (int)((size + partSize - 1) / partSize);
            var etags = new PartETag[parts];
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

                        string md5 = ContentMd5(buffer.AsSpan(0, length));
                        var response = await connection.Retry.RunAsync($"{address}: part {number} of {parts}", t =>
                            connection.Client.UploadPartAsync(new UploadPartRequest
                            {
                                BucketName = bucket, Key = key, UploadId = uploadId, PartNumber = number,
                                InputStream = new MemoryStream(buffer, 0, length, writable: false), PartSize = length, MD5Digest = md5,
                            }, t), token);
                        etags[number - 1] = new PartETag(number, response.ETag);
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
                    BucketName = bucket, Key = key, UploadId = uploadId, PartETags = [.. etags],
                }, token), cancellationToken);
        }
        catch
        {
            await AbortQuietlyAsync(connection, bucket, key, uploadId);
            throw;
        }
    }

    /// <summary>Writes a small object in one request (a PUT is atomic: the object is there whole or not at all).</summary>
    public static Task PutAsync(S3Connection connection, string bucket, string key, byte[] content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(content);
        string md5 = ContentMd5(content);
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

    /// <summary>The Content-MD5 header of a body: the store checks what arrived against it (RFC 1864; S3 PutObject, UploadPart).</summary>
    [SuppressMessage("Security", "CA5351", Justification = "An integrity check the S3 API defines, not a security boundary: the requests are signed with SigV4.")]
    private static string ContentMd5(ReadOnlySpan<byte> body) => Convert.ToBase64String(MD5.HashData(body));
}
