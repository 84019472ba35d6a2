using System.Net;
using System.Net.Sockets;
using Amazon.S3;
using Strata.Backup.Stores;

namespace Strata.Backup.Tests.S3;

public sealed class S3MultipartUploadTests
{
    [Theory]
    [InlineData(0L, 16L << 20)]
    [InlineData(4L << 30, 16L << 20)]
    [InlineData(156L << 30, 16L << 20)]
    [InlineData(1L << 40, 105L << 20)]
    public void PartsAre16MiBUntilS3sPartCountNeedsMore(long size, long part)
    {
        Assert.Equal(part, S3MultipartUpload.PartSize(size));
        Assert.True((size + part - 1) / part <= S3MultipartUpload.MaxParts);
        Assert.True(part >= S3MultipartUpload.MinPartSize);
    }

    [Fact]
    public void ConnectionFailuresAndServerErrorsAreRetriedAndRefusalsAreNot()
    {
        Assert.True(S3Retry.IsTransient(new HttpRequestException("refused", new SocketException((int)SocketError.ConnectionRefused))));
        Assert.True(S3Retry.IsTransient(new AmazonS3Exception("busy") { StatusCode = HttpStatusCode.ServiceUnavailable }));
        Assert.True(S3Retry.IsTransient(new AmazonS3Exception("slow") { StatusCode = HttpStatusCode.TooManyRequests }));
        Assert.False(S3Retry.IsTransient(new AmazonS3Exception("no") { StatusCode = HttpStatusCode.Forbidden, ErrorCode = "InvalidAccessKeyId" }));
        Assert.False(S3Retry.IsTransient(new AmazonS3Exception("gone") { StatusCode = HttpStatusCode.NotFound, ErrorCode = "NoSuchKey" }));
    }

    [Fact]
    public async Task ATransientFailureIsRetriedUntilTheCallSucceeds()
    {
        int calls = 0;
        var retry = new S3Retry(3, TimeSpan.FromMilliseconds(1));

        int result = await retry.RunAsync("x", _ => ++calls < 3 ? throw new IOException("reset") : Task.FromResult(calls), CancellationToken.None);

        Assert.Equal(3, result);
    }

    [Fact]
    public async Task AFailureThatOutlastsTheAttemptsIsOneLineNamingTheCall()
    {
        int calls = 0;
        var retry = new S3Retry(3, TimeSpan.FromMilliseconds(1));

        var e = await Assert.ThrowsAsync<BackupStoreException>(() => retry.RunAsync<int>("s3://b/k: part 2 of 9", _ =>
        {
            calls++;
            throw new HttpRequestException("outer", new SocketException((int)SocketError.ConnectionRefused));
        }, CancellationToken.None));

        Assert.Equal(3, calls);
        Assert.StartsWith("s3://b/k: part 2 of 9: the store did not answer after 3 attempt(s): ", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task RefusedCredentialsAreNotRetried()
    {
        int calls = 0;
        var retry = new S3Retry(5, TimeSpan.FromMilliseconds(1));

        var e = await Assert.ThrowsAsync<BackupStoreException>(() => retry.RunAsync<int>("s3://b", _ =>
        {
            calls++;
            throw new AmazonS3Exception("denied") { StatusCode = HttpStatusCode.Forbidden, ErrorCode = "InvalidAccessKeyId" };
        }, CancellationToken.None));

        Assert.Equal(1, calls);
        Assert.Contains("the store refused the credentials (InvalidAccessKeyId)", e.Message, StringComparison.Ordinal);
    }
}
