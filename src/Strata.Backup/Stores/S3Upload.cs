namespace Strata.Backup.Stores;

/// <summary>A multipart upload in progress: where it goes, its id, and the part size its parts were cut with.</summary>
public sealed record S3Upload(string Bucket, string Key, string UploadId, long PartSize);
