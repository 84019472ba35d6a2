using Strata.Block.Copy;

namespace Strata.Block.Tests;

/// <summary>A copy observer that keeps, per byte of the disk, what it last heard there and how many times.</summary>
internal sealed class RecordingObserver(int diskSize) : ICopyObserver
{
    private readonly Lock _lock = new(); // protects Heard and Times: the copy's workers call at once

    public byte[] Heard { get; } = new byte[diskSize];

    public int[] Times { get; } = new int[diskSize];

    public void Data(long offset, ReadOnlySpan<byte> bytes)
    {
        lock (_lock)
        {
            bytes.CopyTo(Heard.AsSpan((int)offset));
            Count(offset, bytes.Length);
        }
    }

    public void Zeroes(long offset, long length)
    {
        lock (_lock)
        {
            Heard.AsSpan((int)offset, (int)length).Clear();
            Count(offset, length);
        }
    }

    private void Count(long offset, long length)
    {
        for (long i = offset; i < offset + length; i++)
        {
            Times[i]++;
        }
    }
}
