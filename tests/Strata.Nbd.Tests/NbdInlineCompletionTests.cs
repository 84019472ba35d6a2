using System.Collections.Concurrent;
using Strata.Block;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// Replies sent from a storage library's callback thread (<see cref="InlineCompletion"/>), against a
/// stand-in for librbd: requests of every disk complete on one thread of the library's, as librbd's
/// do for every image of a cluster connection. A client that never reads its replies must not stop
/// that thread, or every other disk of the library would stop with it.
/// </summary>
public sealed class NbdInlineCompletionTests
{
    private const int MiB = 1024 * 1024;

    [Fact]
    public async Task AClientThatNeverReadsItsRepliesDoesNotStopTheLibrarysThreadForAnotherDisk()
    {
        int seed = Workload.NewSeed();
        using var library = new CallbackLibrary();
        await StalledReplies.RunAsync(new CallbackNode(new MemoryNode(16 * MiB), library), new CallbackNode(new MemoryNode(16 * MiB), library),
            () => library.CompletedInline, seed);
    }

    /// <summary>
    /// librbd's part: every request of every disk completes on the library's one callback thread;
    /// one offered inline completion runs its caller's code there, marked (<see cref="InlineCompletion.Running"/>).
    /// </summary>
    private sealed class CallbackLibrary : IDisposable
    {
        private readonly BlockingCollection<Action> _callbacks = [];
        private readonly Thread _thread;
        private long _completedInline;

        public CallbackLibrary()
        {
            _thread = new Thread(() =>
            {
                foreach (var callback in _callbacks.GetConsumingEnumerable())
                {
                    callback();
                }
            })
            { IsBackground = true, Name = "library callbacks" };
            _thread.Start();
        }

        public long CompletedInline => Interlocked.Read(ref _completedInline);

        public ValueTask Complete(bool inline, Func<ValueTask> io)
        {
            var done = new TaskCompletionSource(inline ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously);
            _callbacks.Add(() =>
            {
                try
                {
                    io().AsTask().GetAwaiter().GetResult();
                }
                catch (Exception e)
                {
                    done.SetException(e);
                    return;
                }

                if (!inline)
                {
                    done.SetResult();
                    return;
                }

                Interlocked.Increment(ref _completedInline);
                using (InlineCompletion.Running())
                {
                    done.SetResult();
                }
            });
            return new ValueTask(done.Task);
        }

        public void Dispose()
        {
            _callbacks.CompleteAdding();
            _thread.Join();
        }
    }

    /// <summary>A disk whose reads and writes complete through <paramref name="library"/>, inline when the gate offered it.</summary>
    private sealed class CallbackNode(IBlockNode inner, CallbackLibrary library) : DelegatingNode(inner)
    {
        public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            library.Complete(InlineCompletion.IsOfferedTo(this), () => Inner.ReadAsync(offset, buffer, cancellationToken));

        public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default) =>
            library.Complete(InlineCompletion.IsOfferedTo(this), () => Inner.WriteAsync(offset, data, flags, cancellationToken));
    }
}
