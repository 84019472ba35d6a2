using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using Strata.Nbd.Protocol;
using Strata.Nbd.Transport;

namespace Strata.Nbd.Client;

/// <summary>
/// An NBD client: fixed newstyle handshake with NBD_OPT_GO, structured replies and metadata contexts,
/// then any number of concurrent requests on one connection, matched to replies by cookie.
/// </summary>
public sealed partial class NbdClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly SocketReader _reader;
    private readonly SocketWriter _writer;
    private readonly ConcurrentDictionary<ulong, NbdPendingRequest> _pending = new();
    private readonly Dictionary<uint, string> _contextNames = [];
    private Task? _receiveLoop;
    private long _nextCookie;
    private Exception? _failure;
    private int _disposed;

    private NbdClient(Socket socket)
    {
        _socket = socket;
        _reader = new SocketReader(socket);
        _writer = new SocketWriter(socket);
    }

    public string ExportName { get; private set; } = "";

    public string? Description { get; private set; }

    public long Size { get; private set; }

    public NbdTransmissionFlags TransmissionFlags { get; private set; }

    public bool StructuredReplies { get; private set; }

    public uint MinimumBlockSize { get; private set; } = 1;

    public uint PreferredBlockSize { get; private set; } = 4096;

    public uint MaximumBlockSize { get; private set; } = 32 * 1024 * 1024;

    /// <summary>The contexts the server selected, by name, with their ids.</summary>
    public IReadOnlyDictionary<string, uint> MetaContexts => _contextNames.ToDictionary(p => p.Value, p => p.Key);

    public bool IsReadOnly => (TransmissionFlags & NbdTransmissionFlags.ReadOnly) != 0;

    /// <summary>Connects and negotiates; throws <see cref="NbdException"/> when the server refuses the export.</summary>
    public static async Task<NbdClient> ConnectAsync(NbdEndpoint endpoint, string exportName, NbdClientOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(exportName);
        options ??= new NbdClientOptions();
        var socket = endpoint.CreateSocket();
        var client = new NbdClient(socket);
        try
        {
            await socket.ConnectAsync(endpoint.EndPoint, cancellationToken);
            await client.HandshakeAsync(exportName, options, cancellationToken);
            client._receiveLoop = client.ReceiveLoopAsync();
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>The server's exports (NBD_OPT_LIST), then NBD_OPT_ABORT.</summary>
    public static async Task<IReadOnlyList<NbdExportListing>> ListAsync(NbdEndpoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var socket = endpoint.CreateSocket();
        await using var client = new NbdClient(socket);
        await socket.ConnectAsync(endpoint.EndPoint, cancellationToken);
        await client.GreetAsync(cancellationToken);
        await client.SendOptionAsync(NbdOption.List, [], cancellationToken);
        var exports = new List<NbdExportListing>();
        while (true)
        {
            var (type, data) = await client.ReadOptionReplyAsync(NbdOption.List, cancellationToken);
            if (type == NbdOptionReply.Ack)
            {
                break;
            }

            ThrowIfError(NbdOption.List, type, data);
            int nameLength = (int)BinaryPrimitives.ReadUInt32BigEndian(data);
            exports.Add(new NbdExportListing(Encoding.UTF8.GetString(data, 4, nameLength), Encoding.UTF8.GetString(data, 4 + nameLength, data.Length - 4 - nameLength)));
        }

        await client.SendOptionAsync(NbdOption.Abort, [], cancellationToken);
        return exports;
    }

    public Task ReadAsync(long offset, Memory<byte> buffer, NbdCommandFlags flags = NbdCommandFlags.None, CancellationToken cancellationToken = default) =>
        RequestAsync(NbdCommand.Read, flags, offset, (uint)buffer.Length, buffer, default, cancellationToken);

    public Task WriteAsync(long offset, ReadOnlyMemory<byte> data, NbdCommandFlags flags = NbdCommandFlags.None, CancellationToken cancellationToken = default) =>
        RequestAsync(NbdCommand.Write, flags, offset, (uint)data.Length, default, data, cancellationToken);

    public Task FlushAsync(CancellationToken cancellationToken = default) =>
        RequestAsync(NbdCommand.Flush, NbdCommandFlags.None, 0, 0, default, default, cancellationToken);

    public Task TrimAsync(long offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None, CancellationToken cancellationToken = default) =>
        RequestAsync(NbdCommand.Trim, flags, offset, length, default, default, cancellationToken);

    public Task WriteZeroesAsync(long offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None, CancellationToken cancellationToken = default) =>
        RequestAsync(NbdCommand.WriteZeroes, flags, offset, length, default, default, cancellationToken);

    public Task CacheAsync(long offset, uint length, CancellationToken cancellationToken = default) =>
        RequestAsync(NbdCommand.Cache, NbdCommandFlags.None, offset, length, default, default, cancellationToken);

    /// <summary>Block status of a range: per selected context name, the descriptors the server sent.</summary>
    public async Task<IReadOnlyDictionary<string, List<NbdStatusExtent>>> BlockStatusAsync(long offset, uint length,
        NbdCommandFlags flags = NbdCommandFlags.None, CancellationToken cancellationToken = default)
    {
        var pending = await SendRequestAsync(NbdCommand.BlockStatus, flags, (ulong)offset, length, default, default, cancellationToken);
        await CompleteAsync(pending, cancellationToken);
        return pending.Status.ToDictionary(p => _contextNames.GetValueOrDefault(p.Key, p.Key.ToString(System.Globalization.CultureInfo.InvariantCulture)), p => p.Value);
    }

    /// <summary>
    /// Sends any request as given, even one the protocol forbids (tests of the server's bad-input
    /// handling); <paramref name="payload"/> follows the header whatever the command.
    /// </summary>
    public async Task RawRequestAsync(NbdCommand command, NbdCommandFlags flags, ulong offset, uint length, ReadOnlyMemory<byte> payload,
        Memory<byte> readBuffer = default, CancellationToken cancellationToken = default)
    {
        var pending = await SendRequestAsync(command, flags, offset, length, readBuffer, payload, cancellationToken);
        await CompleteAsync(pending, cancellationToken);
    }

    /// <summary>Sends NBD_CMD_DISC after the requests in flight are answered, and closes.</summary>
    public async Task DisconnectAsync(CancellationToken cancellationToken = default)
    {
        while (!_pending.IsEmpty && _failure is null)
        {
            await Task.WhenAny(_pending.Values.Select(p => p.Completion.Task)).WaitAsync(cancellationToken);
        }

        if (_failure is null)
        {
            var header = new byte[NbdWire.RequestHeaderSize];
            new NbdRequest(NbdCommandFlags.None, NbdCommand.Disconnect, 0, 0, 0).Write(header);
            try
            {
                await _writer.SendAsync(header, cancellationToken);
                _socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // The server is gone already.
            }
        }

        if (_receiveLoop is not null)
        {
            await _receiveLoop;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Not connected.
        }

        _socket.Dispose();
        if (_receiveLoop is not null)
        {
            await _receiveLoop;
        }

        _reader.Dispose();
        _writer.Dispose();
    }

    private async Task RequestAsync(NbdCommand command, NbdCommandFlags flags, long offset, uint length, Memory<byte> readBuffer,
        ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var pending = await SendRequestAsync(command, flags, (ulong)offset, length, readBuffer, payload, cancellationToken);
        await CompleteAsync(pending, cancellationToken);
    }

    private async Task<NbdPendingRequest> SendRequestAsync(NbdCommand command, NbdCommandFlags flags, ulong offset, uint length,
        Memory<byte> readBuffer, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (_failure is { } failure)
        {
            throw new IOException($"the connection is broken: {failure.Message}", failure);
        }

        ulong cookie = (ulong)Interlocked.Increment(ref _nextCookie);
        var pending = new NbdPendingRequest(command, (long)offset, readBuffer);
        _pending[cookie] = pending;
        var message = new byte[NbdWire.RequestHeaderSize + payload.Length];
        new NbdRequest(flags, command, cookie, offset, length).Write(message);
        payload.CopyTo(message.AsMemory(NbdWire.RequestHeaderSize));
        try
        {
            await _writer.SendAsync(message, cancellationToken);
        }
        catch
        {
            _pending.TryRemove(cookie, out _);
            throw;
        }

        return pending;
    }

    private static async Task CompleteAsync(NbdPendingRequest pending, CancellationToken cancellationToken)
    {
        await pending.Completion.Task.WaitAsync(cancellationToken);
        if (pending.Error != NbdErrno.None)
        {
            throw new NbdException(pending.Error, pending.Message ?? $"the server answered {pending.Error}");
        }
    }
}
