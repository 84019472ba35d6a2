using System.Net;
using Amazon.S3;
using Amazon.S3.Model;
using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Backup.Stores;

/// <summary>
/// The "s3" protocol: <c>s3://BUCKET/KEY</c> opens one object read-only (<see cref="S3ObjectNode"/>),
/// so the image formats read images kept in an object store, and a relative backing name recorded in
/// such an image resolves next to it (<see cref="ImageLocator.Sibling"/>: <c>s3://BUCKET/PREFIX/0000.qcow2</c>).
/// Objects are made whole by uploads (<see cref="S3MultipartUpload"/>), never written in place, so
/// creating and writing are refused.
/// </summary>
/// <remarks>
/// The registry routes the prefix before ':' to a protocol, so the locator's target is
/// <c>//BUCKET/KEY</c>. A driver made with a connection does not own it: the store that registers it
/// does. One made by <see cref="FromEnvironment"/> (the image tools') opens a connection from the
/// environment per image, which the image's node closes.
/// </remarks>
public sealed class S3ProtocolDriver : IProtocolDriver
{
    public const string ProtocolName = "s3";

    private readonly S3Connection? _shared;

    /// <summary>A driver whose nodes share <paramref name="connection"/>, which the caller keeps and closes.</summary>
    public S3ProtocolDriver(S3Connection connection) => _shared = connection ?? throw new ArgumentNullException(nameof(connection));

    private S3ProtocolDriver()
    {
    }

    /// <summary>
    /// A driver for the image tools: each image it opens gets a connection configured from the
    /// environment and the AWS files (<see cref="S3Connection.FromEnvironment"/>) when it is opened,
    /// so a command that never names s3:// never builds a client.
    /// </summary>
    public static S3ProtocolDriver FromEnvironment() => new();

    public string Name => ProtocolName;

    public async ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ProtocolOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        ArgumentNullException.ThrowIfNull(options);
        if (!options.ReadOnly)
        {
            throw BlockException.NotSupported($"{locator}: objects of an S3 store open read-only");
        }

        var (bucket, key) = Split(locator);
        S3Connection? own = null;
        try
        {
            var connection = _shared ?? (own = S3Connection.FromEnvironment());
            var head = await connection.Retry.RunAsync($"{locator}", token => HeadAsync(connection, bucket, key, token), cancellationToken);
            var node = new S3ObjectNode(connection, bucket, key, locator.Text, head.ContentLength, head.ETag, ownsConnection: own is not null);
            own = null;
            return node;
        }
        catch (BackupException e) when (e.InnerException is AmazonS3Exception { StatusCode: HttpStatusCode.NotFound })
        {
            throw new BlockException(BlockError.InvalidArgument, $"Could not open '{locator}': No such object", e);
        }
        catch (Exception e) when (e is BackupException or BackupStoreException)
        {
            throw new BlockException(BlockError.Io, e.Message, e);
        }
        finally
        {
            own?.Dispose();
        }
    }

    public ValueTask<IBlockNode> CreateAsync(ImageLocator locator, long size, bool mustBeNew, CancellationToken cancellationToken = default) =>
        throw BlockException.NotSupported($"{locator}: images are not created in an S3 store; a backup set uploads them whole");

    public ValueTask DeleteAsync(ImageLocator locator, CancellationToken cancellationToken = default) =>
        throw BlockException.NotSupported($"{locator}: images are not created in an S3 store");

    /// <summary>The bucket and key of a locator <c>s3://BUCKET/KEY</c> (target <c>//BUCKET/KEY</c>).</summary>
    public static (string Bucket, string Key) Split(ImageLocator locator)
    {
        ArgumentNullException.ThrowIfNull(locator);
        string target = locator.Target.StartsWith("//", StringComparison.Ordinal) ? locator.Target[2..] : locator.Target;
        int slash = target.IndexOf('/', StringComparison.Ordinal);
        return slash > 0 && slash < target.Length - 1
            ? (target[..slash], target[(slash + 1)..])
            : throw BlockException.Invalid($"'{locator}' is not s3://BUCKET/KEY");
    }

    private static Task<GetObjectMetadataResponse> HeadAsync(S3Connection connection, string bucket, string key, CancellationToken cancellationToken) =>
        connection.Client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = bucket, Key = key }, cancellationToken);
}
