using Amazon.S3.Model;
using Strata.Block;

namespace Strata.Backup.Stores;

/// <summary>
/// One object of an S3 store as a read-only protocol node: every read is a ranged GET, so a qcow2
/// (and its backing chain) in the store is read where it is, with random access and no download
/// first. The object is pinned by the ETag its HEAD returned: a read of an object replaced since
/// fails (412) instead of mixing two versions.
/// </summary>
public sealed class S3ObjectNode : IBlockNode
{
    private readonly S3Connection _connection;
    private readonly string _bucket;
    private readonly string _key;
    private readonly string _etag;

    // Set when the node was opened with a connection of its own (S3ProtocolDriver.FromEnvironment), which it closes.
    private readonly bool _ownsConnection;

    internal S3ObjectNode(S3Connection connection, string bucket, string key, string address, long size, string etag, bool ownsConnection = false)
    {
        _connection = connection;
        _ownsConnection = ownsConnection;
        _bucket = bucket;
        _key = key;
        _etag = etag;
        FileName = address;
        Size = size;
    }

    public string DriverName => S3ProtocolDriver.ProtocolName;

    public string? FileName { get; }

    public long Size { get; }

    public NodeCapabilities Capabilities => NodeCapabilities.ReadOnly | NodeCapabilities.MultiConnection;

    /// <summary>Any offset and length; 8 MiB per GET keeps one request's retry cheap.</summary>
    public NodeLimits Limits { get; } = new(1, 4096, 8 * 1024 * 1024);

    public IBlockNode? Backing => null;

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.Length == 0)
        {
            return;
        }

        try
        {
            await _connection.Retry.RunAsync($"{FileName}: reading {buffer.Length} bytes at {offset}", async token =>
            {
                using var response = await _connection.Client.GetObjectAsync(new GetObjectRequest
                {
                    BucketName = _bucket,
                    Key = _key,
                    ByteRange = new ByteRange(offset, offset + buffer.Length - 1),
                    EtagToMatch = _etag,
                }, token);
                // A short body is a broken connection: the retry reads the range again.
                await response.ResponseStream.ReadExactlyAsync(buffer, token);
            }, cancellationToken);
        }
        catch (Exception e) when (e is BackupException or BackupStoreException)
        {
            throw new BlockException(BlockError.Io, e.Message, e);
        }
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default) =>
        throw ReadOnlyObject();

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default) =>
        throw ReadOnlyObject();

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) => throw ReadOnlyObject();

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <summary>An object has no holes: all of it is data.</summary>
    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(new BlockExtent(offset, length, BlockState.Allocated | BlockState.Data));

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default) => throw ReadOnlyObject();

    public ValueTask DisposeAsync()
    {
        if (_ownsConnection)
        {
            _connection.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private BlockException ReadOnlyObject() => BlockException.ReadOnly($"{FileName}: an object of the store is read-only (a backup set's objects are written whole)");
}
