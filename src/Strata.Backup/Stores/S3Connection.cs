using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.S3;

namespace Strata.Backup.Stores;

/// <summary>
/// A client of an S3-compatible store set up as the AWS SDKs set themselves up, so RGW, MinIO and
/// AWS all work with no option of ours: the endpoint from <c>AWS_ENDPOINT_URL_S3</c>,
/// <c>AWS_ENDPOINT_URL</c> or the profile's <c>endpoint_url</c>; the region from <c>AWS_REGION</c>,
/// <c>AWS_DEFAULT_REGION</c> or the profile (us-east-1 when none says); the credentials from the
/// SDK's default chain (<c>AWS_ACCESS_KEY_ID</c>/<c>AWS_SECRET_ACCESS_KEY</c>, ~/.aws/credentials and
/// ~/.aws/config with <c>AWS_PROFILE</c>, then a container's or an instance's role).
/// </summary>
/// <remarks>
/// A configured endpoint is addressed path-style (<c>http://host:port/bucket/key</c>): a loopback or
/// private gateway has no DNS name per bucket. Checksums are sent only where the API requires them,
/// as stores that predate the SDK's newer trailing checksums (Ceph Pacific's RGW) refuse them; a part
/// carries its Content-MD5 instead (<see cref="S3MultipartUpload"/>). The SDK's retries are off: the
/// one policy is <see cref="S3Retry"/>.
/// </remarks>
public sealed class S3Connection : IDisposable
{
    private S3Connection(IAmazonS3 client, string endpoint, S3Retry retry)
    {
        Client = client;
        Endpoint = endpoint;
        Retry = retry;
    }

    public IAmazonS3 Client { get; }

    /// <summary>Where requests go, for messages.</summary>
    public string Endpoint { get; }

    public S3Retry Retry { get; }

    /// <summary>A client configured from the environment and the AWS files, as the SDKs do.</summary>
    public static S3Connection FromEnvironment(S3Retry? retry = null)
    {
        string profileName = Variable("AWS_PROFILE") ?? "default";
        CredentialProfile? profile = null;
        try
        {
            _ = new CredentialProfileStoreChain().TryGetProfile(profileName, out profile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or AmazonClientException)
        {
            // An unreadable ~/.aws leaves the environment to speak; the credentials chain says the rest.
        }

        string? endpoint = Variable("AWS_ENDPOINT_URL_S3") ?? Variable("AWS_ENDPOINT_URL") ?? profile?.EndpointUrl;
        string region = Variable("AWS_REGION") ?? Variable("AWS_DEFAULT_REGION") ?? profile?.Region?.SystemName ?? "us-east-1";
        var config = new AmazonS3Config
        {
            MaxErrorRetry = 0,
            Timeout = TimeSpan.FromMinutes(2),
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        if (endpoint is not null)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw new BackupException($"endpoint '{endpoint}' is not an http:// or https:// address");
            }

            config.ServiceURL = endpoint;
            config.ForcePathStyle = true;
            config.AuthenticationRegion = region;
        }
        else
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(region);
        }

        return new S3Connection(new AmazonS3Client(config), endpoint ?? $"s3.{region}.amazonaws.com", retry ?? S3Retry.Default);
    }

    public void Dispose() => Client.Dispose();

    private static string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;
}
