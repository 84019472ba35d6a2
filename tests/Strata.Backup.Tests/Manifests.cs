using System.Security.Cryptography;

namespace Strata.Backup.Tests;

/// <summary>Small manifests and bitmap records for the unit tests.</summary>
internal static class Manifests
{
    public static string ZeroHash(int length) => Convert.ToHexStringLower(SHA256.HashData(new byte[length]));

    /// <summary>A full point of zeroes, hashed as version 1 does (each chunk's bytes whole).</summary>
    public static BackupManifest Full(long size = 8 << 20, int chunkSize = 4 << 20, params BackupBitmap[] tracking) => new()
    {
        Version = BackupManifest.VersionWithoutLeaves,
        Point = 0,
        Time = DateTimeOffset.UnixEpoch,
        Kind = BackupKind.Full,
        Image = BackupSet.ImageName(0),
        Size = size,
        Source = new BackupSource("/disk.img"),
        Tracking = tracking,
        Extents = [new BackupExtent(0, size)],
        ChunkSize = chunkSize,
        Chunks = [.. Enumerable.Range(0, BackupManifest.ChunkCount(size, chunkSize)).Select(_ => ZeroHash(chunkSize))],
    };

    public static BackupBitmap Bitmap(string file, ulong generation, string state = "frozen", long granularity = 4096) =>
        new(file, null, granularity, generation, state);
}
