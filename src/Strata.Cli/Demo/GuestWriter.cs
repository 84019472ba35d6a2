using System.Buffers.Binary;
using System.Diagnostics;
using Strata.Nbd.Client;

namespace Strata.Cli.Demo;

/// <summary>
/// The demo's guest: writes 64 KiB blocks over NBD as fast as it can, each stamped with a sequence
/// number, and remembers for every block which writes were sent and acknowledged when, so a
/// snapshot can be checked for consistency: each of its blocks must hold the last write
/// acknowledged before the snapshot began, or a write that was in flight during it.
/// </summary>
internal sealed class GuestWriter(NbdClient client, long diskSize, int seed)
{
    public const int BlockSize = 64 * 1024;

    // Protects _history, _model: the writer task updates them, the checks read them.
    private readonly Lock _lock = new();
    private readonly Dictionary<long, List<(long Seq, long Sent, long Acked)>> _history = [];
    private readonly byte[] _model = new byte[diskSize];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _seq;

    public long Writes => Interlocked.Read(ref _seq);

    public long Now => _clock.ElapsedTicks;

    /// <summary>Writes until <paramref name="stop"/> is cancelled; never more than <paramref name="maxWrites"/>.</summary>
    public async Task RunAsync(long maxWrites, CancellationToken stop)
    {
        var random = new Random(seed);
        long blocks = diskSize / BlockSize;
        var data = new byte[BlockSize];
        while (!stop.IsCancellationRequested && Writes < maxWrites)
        {
            long block = random.NextInt64(blocks);
            long seq = Interlocked.Increment(ref _seq);
            Stamp(data, seq);
            long sent = Now;
            await client.WriteAsync(block * BlockSize, data, cancellationToken: CancellationToken.None);
            long acked = Now;
            lock (_lock)
            {
                if (!_history.TryGetValue(block, out var list))
                {
                    _history[block] = list = [];
                }

                list.Add((seq, sent, acked));
                data.CopyTo(_model, block * BlockSize);
            }
        }
    }

    /// <summary>What the disk must read now (call when the writer has stopped).</summary>
    public byte[] Model()
    {
        lock (_lock)
        {
            return (byte[])_model.Clone();
        }
    }

    /// <summary>
    /// Checks that <paramref name="image"/> (the frozen snapshot, read as raw bytes) is one point in
    /// time between <paramref name="begin"/> and <paramref name="end"/>; returns the blocks that are not.
    /// </summary>
    public List<long> InconsistentBlocks(byte[] image, long begin, long end)
    {
        var bad = new List<long>();
        lock (_lock)
        {
            for (long block = 0; block < diskSize / BlockSize; block++)
            {
                long seq = BinaryPrimitives.ReadInt64LittleEndian(image.AsSpan((int)(block * BlockSize)));
                var writes = _history.GetValueOrDefault(block) ?? [];
                long mustHave = writes.Where(w => w.Acked < begin).Select(w => w.Seq).DefaultIfEmpty(0).Max();
                bool allowed = seq == mustHave || writes.Any(w => w.Seq == seq && w.Seq > mustHave && w.Sent < end);
                var content = image.AsSpan((int)(block * BlockSize), BlockSize);
                bool intact = seq == 0 ? !content.ContainsAnyExcept((byte)0) : content.SequenceEqual(Stamped(seq));
                if (!allowed || !intact)
                {
                    bad.Add(block);
                }
            }
        }

        return bad;
    }

    private static byte[] Stamped(long seq)
    {
        var data = new byte[BlockSize];
        Stamp(data, seq);
        return data;
    }

    /// <summary>The sequence number in the first 8 bytes, the rest a pattern derived from it.</summary>
    private static void Stamp(byte[] data, long seq)
    {
        new Random((int)(seq * 2654435761 % int.MaxValue)).NextBytes(data);
        BinaryPrimitives.WriteInt64LittleEndian(data, seq);
    }
}
