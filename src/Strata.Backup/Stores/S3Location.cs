namespace Strata.Backup.Stores;

/// <summary>
/// Where a backup set lives in an object store: <c>s3://BUCKET/PREFIX</c>. Every file of the set is
/// the object <c>PREFIX/NAME</c> (or <c>NAME</c> when there is no prefix), so the set's layout in the
/// bucket is the folder's (docs/backup.md, "Sets in an S3 store").
/// </summary>
public sealed record S3Location
{
    public const string Scheme = "s3://";

    private S3Location(string bucket, string prefix)
    {
        Bucket = bucket;
        Prefix = prefix;
    }

    public string Bucket { get; }

    /// <summary>The key prefix without slashes at either end; empty for the bucket's top.</summary>
    public string Prefix { get; }

    /// <summary>True when <paramref name="name"/> names a set in an object store rather than a folder.</summary>
    public static bool IsS3(string name) => name.StartsWith(Scheme, StringComparison.Ordinal);

    /// <summary>Parses <c>s3://BUCKET[/PREFIX]</c>; one line says what is wrong with a bad one.</summary>
    public static S3Location Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!IsS3(text))
        {
            throw new BackupException($"{text}: not an s3://BUCKET/PREFIX address");
        }

        string rest = text[Scheme.Length..];
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string bucket = slash < 0 ? rest : rest[..slash];
        string prefix = slash < 0 ? "" : rest[(slash + 1)..].Trim('/');
        // Bucket names as S3 allows them (3 to 63 lower-case letters, digits, dots and hyphens), so a
        // typo is refused here rather than sent as a request to some other host name.
        if (bucket.Length is < 3 or > 63 || !bucket.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '-')
            || !char.IsAsciiLetterOrDigit(bucket[0]) || !char.IsAsciiLetterOrDigit(bucket[^1]))
        {
            throw new BackupException($"{text}: '{bucket}' is not a bucket name (3 to 63 lower-case letters, digits, '.' and '-')");
        }

        if (prefix.Split('/').Any(p => p is "" or "." or "..") && prefix.Length > 0)
        {
            throw new BackupException($"{text}: the prefix has an empty, '.' or '..' part");
        }

        return new S3Location(bucket, prefix);
    }

    /// <summary>The key of the set's file <paramref name="name"/>.</summary>
    public string Key(string name) => Prefix.Length == 0 ? name : Prefix + "/" + name;

    /// <summary>The key prefix every file of the set starts with ("" or "PREFIX/").</summary>
    public string KeyPrefix => Prefix.Length == 0 ? "" : Prefix + "/";

    /// <summary>The address of the set's file <paramref name="name"/>, as the s3 protocol driver opens it.</summary>
    public string Address(string name) => Scheme + Bucket + "/" + Key(name);

    public override string ToString() => Scheme + Bucket + (Prefix.Length == 0 ? "" : "/" + Prefix);
}
