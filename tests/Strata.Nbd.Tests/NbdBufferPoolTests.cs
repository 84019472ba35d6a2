using Strata.Nbd.Server;

namespace Strata.Nbd.Tests;

public sealed class NbdBufferPoolTests
{
    private const int Piece = NbdBufferPool.PieceSize;

    [Theory]
    [InlineData(0)]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(65537)]
    [InlineData(300_000)]
    [InlineData(Piece)]
    public void EveryBufferHasHeaderRoomAndAtMostOnePieceOfData(int length)
    {
        var pool = new NbdBufferPool();
        byte[] buffer = pool.Rent(length);
        Assert.InRange(buffer.Length, NbdBufferPool.HeaderRoom + length, NbdBufferPool.HeaderRoom + Math.Max(Piece, 2 * length));
        Assert.InRange(NbdBufferPool.Footprint(length), length, Math.Max(length, 2 * length));
        pool.Return(buffer);
    }

    [Theory]
    [InlineData(32 * Piece, 32L * Piece)]
    [InlineData(Piece + 1, Piece + 1L)]
    [InlineData((3 * Piece) + 200_000, (3L * Piece) + 262_144)]
    public void APayloadCountsItsPiecesAgainstTheBudget(int length, long footprint)
    {
        Assert.Equal(footprint, NbdBufferPool.PayloadFootprint(length));
    }

    [Fact]
    public void ReturnedPiecesAreReusedUpToTheRetainLimitAndTheRestLetGo()
    {
        var pool = new NbdBufferPool();
        var first = Enumerable.Range(0, 100).Select(_ => pool.Rent(Piece)).ToList();
        first.ForEach(pool.Return);
        var again = Enumerable.Range(0, 100).Select(_ => pool.Rent(Piece)).ToList();
        int reused = again.Count(b => first.Any(f => ReferenceEquals(f, b)));
        Assert.Equal(64, reused);
    }

    [Fact]
    public void WhenTheLastConnectionClosesNothingIsKept()
    {
        var pool = new NbdBufferPool();
        byte[] piece = pool.Rent(Piece);
        pool.Return(piece);
        pool.ConnectionClosed(last: true);
        Assert.NotSame(piece, pool.Rent(Piece));
    }
}
