using Strata.Block;

namespace Strata.TestKit;

/// <summary>
/// A filter whose reads and writes that touch byte <see cref="HangAt"/> hang until <see cref="Release"/>,
/// as a request to a remote store that stopped answering does. Other requests pass at once.
/// </summary>
public sealed class HangingNode(IBlockNode inner) : DelegatingNode(inner)
{
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The byte whose requests hang.</summary>
    public long HangAt { get; init; }

    /// <summary>True: a hung request ignores its cancellation token too, as a driver stuck in a system call does.</summary>
    public bool IgnoresCancellation { get; init; }

    /// <summary>Completes when the first request has started to hang.</summary>
    public Task Entered => _entered.Task;

    /// <summary>Lets every hung request (and every later one) go on.</summary>
    public void Release() => _released.TrySetResult();

    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await HangIfTouchedAsync(offset, buffer.Length, cancellationToken);
        await Inner.ReadAsync(offset, buffer, cancellationToken);
    }

    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None,
        CancellationToken cancellationToken = default)
    {
        await HangIfTouchedAsync(offset, data.Length, cancellationToken);
        await Inner.WriteAsync(offset, data, flags, cancellationToken);
    }

    private async Task HangIfTouchedAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (offset <= HangAt && HangAt < offset + length && !_released.Task.IsCompleted)
        {
            _entered.TrySetResult();
            await _released.Task.WaitAsync(IgnoresCancellation ? CancellationToken.None : cancellationToken);
        }
    }
}
