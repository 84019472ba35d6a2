using System.Buffers;
using System.Numerics;

namespace Strata.Nbd.Server;

/// <summary>
/// The server's buffers for request and reply data (docs/nbd.md, "Memory"). Data travels in pieces of
/// at most <see cref="PieceSize"/> bytes, so no request, however large, needs a larger array; each
/// buffer has <see cref="HeaderRoom"/> bytes in front for the reply header that goes out with it.
/// </summary>
/// <remarks>
/// Small buffers come from <see cref="ArrayPool{T}.Shared"/>, which keeps few of them. Larger ones come
/// in four sizes (128 KiB to 1 MiB, plus the header room: never a power of two, so they cannot be
/// mistaken for the shared pool's) and at most <see cref="RetainLimit"/> bytes of them are kept for
/// reuse; the rest goes to the garbage collector. The collector keeps freed large arrays resident
/// until a collection that is asked to give memory back, so once clients leave and enough was let
/// go, this pool asks for one: that is what makes the daemon's memory fall back after a burst.
/// </remarks>
internal sealed class NbdBufferPool
{
    /// <summary>The most data one buffer holds: a request's payload is received, and a read sent, in pieces of this size.</summary>
    public const int PieceSize = 1024 * 1024;

    /// <summary>Room before the data for one reply header: an OFFSET_DATA chunk header (28 bytes) or a simple reply (16).</summary>
    public const int HeaderRoom = 32;

    /// <summary>Data up to this size is served by the shared pool.</summary>
    private const int SmallLimit = 64 * 1024;

    private const int SmallestPiece = 128 * 1024;

    /// <summary>The most piece bytes kept for reuse: a busy server's working set (1 MiB requests at depth 32 on two connections).</summary>
    private const long RetainLimit = 64L * 1024 * 1024;

    /// <summary>Bytes let go before a compacting collection is worth its pause (a few milliseconds on this heap).</summary>
    private const long CompactAfter = 64L * 1024 * 1024;

    // Protects _free, _retained and _released.
    private readonly Lock _lock = new();
    private readonly Stack<byte[]>[] _free = [new(), new(), new(), new()];
    private long _retained;
    private long _released;

    /// <summary>
    /// The bytes a buffer for <paramref name="dataLength"/> bytes of data (at most <see cref="PieceSize"/>)
    /// counts against a connection's budget: the data it can hold.
    /// </summary>
    public static int Footprint(int dataLength) => dataLength <= SmallLimit ? dataLength : PieceCapacity(dataLength);

    /// <summary>What the pieces of a <paramref name="length"/>-byte payload count against a budget in all.</summary>
    public static long PayloadFootprint(long length) => (length / PieceSize * PieceSize) + Footprint((int)(length % PieceSize));

    /// <summary>A buffer with room for <see cref="HeaderRoom"/> and then <paramref name="dataLength"/> (at most <see cref="PieceSize"/>) bytes.</summary>
    public byte[] Rent(int dataLength)
    {
        if (dataLength <= SmallLimit)
        {
            return ArrayPool<byte>.Shared.Rent(HeaderRoom + dataLength);
        }

        int capacity = PieceCapacity(dataLength);
        lock (_lock)
        {
            if (_free[SizeClass(capacity)].TryPop(out var buffer))
            {
                _retained -= capacity;
                return buffer;
            }
        }

        return GC.AllocateUninitializedArray<byte>(HeaderRoom + capacity);
    }

    public void Return(byte[] buffer)
    {
        int capacity = buffer.Length - HeaderRoom;
        if (capacity < SmallestPiece || capacity > PieceSize || !int.IsPow2(capacity))
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return;
        }

        lock (_lock)
        {
            if (_retained + capacity <= RetainLimit)
            {
                _free[SizeClass(capacity)].Push(buffer);
                _retained += capacity;
            }
            else
            {
                _released += capacity;
            }
        }
    }

    /// <summary>
    /// A connection closed. When it was the last, the kept pieces go too; when enough memory was let
    /// go since the last time, a compacting collection returns it to the system.
    /// </summary>
    public void ConnectionClosed(bool last)
    {
        lock (_lock)
        {
            if (last)
            {
                foreach (var free in _free)
                {
                    free.Clear();
                }

                _released += _retained;
                _retained = 0;
            }

            if (_released < CompactAfter)
            {
                return;
            }

            _released = 0;
        }

        // Aggressive: the only mode in which the collector also decommits the freed regions, so the
        // resident set drops; a plain collection frees the arrays but keeps their pages.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    private static int PieceCapacity(int dataLength) => (int)Math.Max(SmallestPiece, BitOperations.RoundUpToPowerOf2((uint)dataLength));

    private static int SizeClass(int capacity) => BitOperations.Log2((uint)capacity) - BitOperations.Log2(SmallestPiece);
}
