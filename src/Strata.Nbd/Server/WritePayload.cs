using Strata.Nbd.Transport;

namespace Strata.Nbd.Server;

/// <summary>
/// A WRITE's data as received: pooled pieces of <see cref="NbdBufferPool.PieceSize"/> bytes (the last
/// may be shorter), in order, from offset 0 of each buffer. A payload of one piece, by far the common
/// case, needs no list. The default value holds nothing.
/// </summary>
internal readonly struct WritePayload
{
    private readonly byte[]? _single;
    private readonly byte[][]? _pieces;

    private WritePayload(byte[]? single, byte[][]? pieces, int length)
    {
        _single = single;
        _pieces = pieces;
        Length = length;
    }

    public int Length { get; }

    public bool IsEmpty => _single is null && _pieces is null;

    /// <summary>What the payload counts against the connection's write budget.</summary>
    public long Footprint => NbdBufferPool.PayloadFootprint(Length);

    public int PieceCount => _pieces?.Length ?? 1;

    /// <summary>Receives <paramref name="length"/> bytes into pieces from <paramref name="pool"/>; nothing is kept if the peer stops first.</summary>
    public static WritePayload Receive(NbdBufferPool pool, int length, SocketReader reader)
    {
        if (length <= NbdBufferPool.PieceSize)
        {
            var buffer = pool.Rent(length);
            try
            {
                reader.ReadExactly(buffer.AsSpan(0, length));
            }
            catch
            {
                pool.Return(buffer);
                throw;
            }

            return new WritePayload(buffer, null, length);
        }

        var pieces = new byte[(length + NbdBufferPool.PieceSize - 1) / NbdBufferPool.PieceSize][];
        var payload = new WritePayload(null, pieces, length);
        try
        {
            for (int i = 0; i < pieces.Length; i++)
            {
                pieces[i] = pool.Rent(NbdBufferPool.PieceSize);
                reader.ReadExactly(pieces[i].AsSpan(0, payload.PieceLength(i)));
            }
        }
        catch
        {
            payload.ReturnTo(pool);
            throw;
        }

        return payload;
    }

    /// <summary>The data of piece <paramref name="index"/>, which starts at payload offset index × PieceSize.</summary>
    public ReadOnlyMemory<byte> Piece(int index) => (_single ?? _pieces![index]).AsMemory(0, PieceLength(index));

    public void ReturnTo(NbdBufferPool pool)
    {
        if (_single is not null)
        {
            pool.Return(_single);
            return;
        }

        foreach (var piece in _pieces ?? [])
        {
            if (piece is not null)
            {
                pool.Return(piece);
            }
        }
    }

    private int PieceLength(int index) => Math.Min(NbdBufferPool.PieceSize, Length - (index * NbdBufferPool.PieceSize));
}
