using System.Net;
using System.Net.Sockets;
using Amazon.Runtime;

namespace Strata.Backup.Stores;

/// <summary>
/// The one retry policy of every call to the object store: a call that fails for a reason that may
/// pass (no connection, a reset, a time-out, a 5xx, throttling) is tried again after a growing,
/// jittered pause, up to <see cref="Attempts"/> times; anything else, and the last failure, becomes
/// one line. The SDK's own retries are off (<see cref="S3Connection"/>), so the pauses add up to
/// what is written here: 0.5 + 1 + 2 + 4 + 8 s by default, enough to ride out a gateway restart.
/// </summary>
public sealed class S3Retry
{
    public S3Retry(int attempts, TimeSpan firstPause)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(attempts);
        Attempts = attempts;
        FirstPause = firstPause;
    }

    public static S3Retry Default { get; } = new(6, TimeSpan.FromMilliseconds(500));

    public int Attempts { get; }

    public TimeSpan FirstPause { get; }

    /// <summary>Runs <paramref name="call"/> under the policy; <paramref name="what"/> names it in the message of a failure.</summary>
    public async Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        var pause = FirstPause;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call(cancellationToken);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && IsTransient(e) && attempt < Attempts)
            {
                // Jitter keeps concurrent part uploads from retrying in lock step.
                await Task.Delay(pause * (0.75 + (Random.Shared.NextDouble() / 2)), cancellationToken);
                pause *= 2;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not (BackupException or BackupStoreException))
            {
                throw Describe(what, e, attempt);
            }
        }
    }

    /// <summary>As <see cref="RunAsync{T}"/>, for a call with no result.</summary>
    public Task RunAsync(string what, Func<CancellationToken, Task> call, CancellationToken cancellationToken) =>
        RunAsync(what, async token =>
        {
            await call(token);
            return true;
        }, cancellationToken);

    /// <summary>A failure that another attempt may not meet.</summary>
    public static bool IsTransient(Exception e) => e switch
    {
        AmazonServiceException s when s.StatusCode is HttpStatusCode.TooManyRequests or >= HttpStatusCode.InternalServerError => true,
        AmazonServiceException { ErrorCode: "RequestTimeout" or "SlowDown" or "InternalError" or "ServiceUnavailable" } => true,
        AmazonServiceException { StatusCode: 0 } s => s.InnerException is { } inner && IsTransient(inner),
        AmazonClientException c => c.InnerException is { } inner && IsTransient(inner),
        HttpRequestException or IOException or SocketException or TimeoutException => true,
        TaskCanceledException => true, // the HTTP client's own time-out; the caller's cancellation is checked before
        _ => false,
    };

    /// <summary>The one line a failure of the store becomes.</summary>
    public static Exception Describe(string what, Exception e, int attempts)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e switch
        {
            AmazonServiceException { ErrorCode: "InvalidAccessKeyId" or "SignatureDoesNotMatch" or "AccessDenied" or "InvalidToken" or "ExpiredToken" } s =>
                new BackupStoreException($"{what}: the store refused the credentials ({s.ErrorCode}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials", e),
            AmazonServiceException { StatusCode: HttpStatusCode.Forbidden } s =>
                new BackupStoreException($"{what}: access denied ({s.ErrorCode ?? "403"})", e),
            AmazonServiceException { ErrorCode: "NoSuchBucket" } => new BackupException($"{what}: no such bucket", e),
            AmazonServiceException s when !IsTransient(s) => new BackupException($"{what}: {s.ErrorCode ?? s.StatusCode.ToString()}: {OneLine(s.Message)}", e),
            AmazonClientException c when c.Message.Contains("credentials", StringComparison.OrdinalIgnoreCase) && !IsTransient(c) =>
                new BackupStoreException($"{what}: no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write ~/.aws/credentials", e),
            _ => new BackupStoreException($"{what}: the store did not answer after {attempts} attempt(s): {OneLine(Innermost(e).Message)}", e),
        };
    }

    private static Exception Innermost(Exception e) => e.InnerException is { } inner ? Innermost(inner) : e;

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}
