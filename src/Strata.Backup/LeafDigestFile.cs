using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace Strata.Backup;

/// <summary>
/// <c>NNNN.leaves</c>: the SHA-256 digest of every leaf of the disk at point NNNN, kept so that the
/// next incremental hashes only the leaves it copies (docs/backup.md, "Leaf digests"). A cache, not a
/// proof: nothing verifies against it, and a chunk's digests from it are used only when they combine
/// into the chunk hash the previous manifest records. Layout (big-endian): the magic
/// <c>"STRLEAF\n"</c>, u32 version (1), u32 leaf size, u64 disk size, u64 zero; then 32 bytes per leaf
/// in disk order. The set keeps the newest point's file only.
/// </summary>
/// <remarks>
/// Written as <c>NNNN.leaves.tmp</c> (the previous point's file copied, then the changed chunks'
/// digests written over it), fsynced and renamed before the point's manifest is; a file numbered past
/// the last point is what a run that died left (<see cref="BackupSet.RemoveHalfMade"/>).
/// </remarks>
internal sealed class LeafDigestFile : IDisposable
{
    public const string Extension = ".leaves";
    private const int HeaderSize = 32;
    private const uint Version = 1;
    private static ReadOnlySpan<byte> Magic => "STRLEAF\n"u8;

    private readonly string _path;
    private readonly string _temp;
    private readonly SafeFileHandle _handle;
    private bool _committed;

    private LeafDigestFile(string path, SafeFileHandle handle, bool known)
    {
        _path = path;
        _temp = path + AtomicFile.TempExtension;
        _handle = handle;
        Known = known;
    }

    /// <summary>True when the file began as the previous point's: its digests are worth checking against the previous manifest.</summary>
    public bool Known { get; }

    /// <summary>
    /// Starts the file at <paramref name="path"/> (as its temp file): a copy of <paramref name="previous"/>
    /// when that is a leaf file of the same disk size and leaf size, else all zeroes (no digest known).
    /// </summary>
    public static LeafDigestFile Begin(string path, string? previous, long diskSize, int leafSize)
    {
        string temp = path + AtomicFile.TempExtension;
        bool known = previous is not null && Matches(previous, diskSize, leafSize);
        if (known)
        {
            File.Copy(previous!, temp, overwrite: true);
        }

        var handle = File.OpenHandle(temp, known ? FileMode.Open : FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        if (!known)
        {
            Span<byte> header = stackalloc byte[HeaderSize];
            header.Clear();
            Magic.CopyTo(header);
            BinaryPrimitives.WriteUInt32BigEndian(header[8..], Version);
            BinaryPrimitives.WriteUInt32BigEndian(header[12..], (uint)leafSize);
            BinaryPrimitives.WriteInt64BigEndian(header[16..], diskSize);
            RandomAccess.SetLength(handle, HeaderSize + ((diskSize + leafSize - 1) / leafSize * ChunkHashes.DigestSize));
            RandomAccess.Write(handle, header, 0);
        }

        return new LeafDigestFile(path, handle, known);
    }

    /// <summary>The name of point <paramref name="point"/>'s leaf file in its set.</summary>
    public static string Name(int point) => Path.ChangeExtension(BackupSet.ManifestName(point), Extension);

    /// <summary>The digests of leaves from <paramref name="first"/> on, as many as <paramref name="digests"/> holds.</summary>
    public void Read(long first, Span<byte> digests)
    {
        int n = RandomAccess.Read(_handle, digests, HeaderSize + (first * ChunkHashes.DigestSize));
        if (n != digests.Length)
        {
            throw new BackupException($"{_temp}: shorter than its header says");
        }
    }

    public void Write(long first, ReadOnlySpan<byte> digests) => RandomAccess.Write(_handle, digests, HeaderSize + (first * ChunkHashes.DigestSize));

    /// <summary>Makes the file <c>NNNN.leaves</c>, durably: fsync, rename, fsync of the folder.</summary>
    public void Commit()
    {
        RandomAccess.FlushToDisk(_handle);
        _handle.Dispose();
        File.Move(_temp, _path, overwrite: true);
        FolderSync.Flush(Path.GetDirectoryName(_path)!);
        _committed = true;
    }

    public void Dispose()
    {
        _handle.Dispose();
        if (!_committed)
        {
            File.Delete(_temp);
        }
    }

    private static bool Matches(string path, long diskSize, int leafSize)
    {
        try
        {
            using var file = File.OpenHandle(path);
            Span<byte> header = stackalloc byte[HeaderSize];
            return RandomAccess.Read(file, header, 0) == HeaderSize && header[..8].SequenceEqual(Magic)
                && BinaryPrimitives.ReadUInt32BigEndian(header[8..]) == Version
                && BinaryPrimitives.ReadUInt32BigEndian(header[12..]) == (uint)leafSize
                && BinaryPrimitives.ReadInt64BigEndian(header[16..]) == diskSize
                && RandomAccess.GetLength(file) == HeaderSize + ((diskSize + leafSize - 1) / leafSize * ChunkHashes.DigestSize);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
