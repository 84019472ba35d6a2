namespace Strata.Backup.Stores;

/// <summary>
/// What a writer records (<c>pending/upload.json</c> in its staging folder) before the upload of a
/// completely staged point begins, so that the next writer of the set on this host can continue the
/// upload instead of redoing the point (<see cref="S3PendingPoint"/>, docs/backup.md "After a crash").
/// </summary>
internal sealed record PendingUpload
{
    /// <summary>The set, as <c>s3://BUCKET/PREFIX</c>.</summary>
    public required string Set { get; init; }

    /// <summary>The point staged: the set had exactly this many points when it was made.</summary>
    public required int Point { get; init; }

    /// <summary>The image's object key.</summary>
    public required string Key { get; init; }

    /// <summary>The multipart upload; null when the image is small enough for one PUT (nothing to continue: it is sent again).</summary>
    public string? UploadId { get; init; }

    /// <summary>The part size the upload began with: a continued upload keeps it, or its parts would not line up.</summary>
    public required long PartSize { get; init; }

    /// <summary>The staged image's length and last write (UTC ticks): a file written or replaced since is not continued.</summary>
    public required long Size { get; init; }

    public required long Modified { get; init; }

    /// <summary>SHA-256 of the staged manifest, the one PUT once the image is in the store.</summary>
    public required string ManifestSha256 { get; init; }

    /// <summary>SHA-256 of the set's last manifest when the point was staged (null: the set was empty): the point is made on it.</summary>
    public string? BaseSha256 { get; init; }

    /// <summary>What the staging copy wrote, for the report of the run that finishes it.</summary>
    public long BytesCopied { get; init; }
}
