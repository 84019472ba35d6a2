using Strata.Block;
using System.Collections.Concurrent;

namespace Strata.Formats.Rbd;

/// <summary>
/// Reusable <see cref="RbdCompletion"/>s for one image, so a request allocates nothing: at most
/// <see cref="Capacity"/> idle ones are kept (more may be in flight; the extra are dropped on return).
/// </summary>
internal sealed class RbdCompletionPool
{
    public const int Capacity = 256;

    private readonly ConcurrentQueue<RbdCompletion> _idle = new();
    private int _idleCount;
    private bool _closed;
    private long _completedInline;

    /// <summary>Requests of this image whose success was delivered on librbd's thread (<see cref="InlineCompletion"/>): for tests.</summary>
    public long CompletedInline => Interlocked.Read(ref _completedInline);

    public void CountInline() => Interlocked.Increment(ref _completedInline);

    public RbdCompletion Rent()
    {
        if (_idle.TryDequeue(out var completion))
        {
            Interlocked.Decrement(ref _idleCount);
            return completion;
        }

        return new RbdCompletion(this);
    }

    public void Return(RbdCompletion completion)
    {
        if (!Volatile.Read(ref _closed))
        {
            if (Interlocked.Increment(ref _idleCount) <= Capacity)
            {
                _idle.Enqueue(completion);
                return;
            }

            Interlocked.Decrement(ref _idleCount);
        }

        completion.Free();
    }

    /// <summary>At the image's close, after its last request: frees every idle completion's handle.</summary>
    public void Close()
    {
        Volatile.Write(ref _closed, true);
        while (_idle.TryDequeue(out var completion))
        {
            completion.Free();
        }
    }
}
