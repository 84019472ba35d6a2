using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Strata.Block;

namespace Strata.Formats.Rbd;

/// <summary>
/// One librbd asynchronous request as a <see cref="ValueTask{TResult}"/> of its return value, or as
/// a <see cref="ValueTask"/> that fails with the request's error (<see cref="Checked"/>): an
/// rbd_completion_t whose callback, run on a librbd thread, completes this source. No thread waits
/// for the request, and a request allocates nothing managed: the source is pooled, and awaiting it
/// needs no state machine of the driver's own (docs/benchmarks/rbd.md, "Memory"). The caller's buffer stays pinned from <see cref="Start"/> until the callback has
/// fired, because librbd reads or fills it until then. Pooled per image
/// (<see cref="RbdCompletionPool"/>): an instance returns to the pool when its result is taken.
/// </summary>
/// <remarks>
/// Continuations run on the thread pool, not on librbd's callback thread, which must not block or
/// issue new librbd calls inline (QEMU hands completions to its own event loop for the same reason);
/// except the success of a request its caller let complete inline (<see cref="InlineCompletion"/>):
/// that caller's code runs on the callback thread, marked so, up to its next wait, and promises to
/// block on nothing and start nothing there.
/// </remarks>
internal sealed unsafe class RbdCompletion : IValueTaskSource<long>, IValueTaskSource
{
    private readonly RbdCompletionPool _pool;

    // This object's handle, given to librbd as the callback's argument; freed when the pool drops it.
    private readonly GCHandle _self;
    private ManualResetValueTaskSourceCore<long> _core = new() { RunContinuationsAsynchronously = true };
    private MemoryHandle _pin;

    // What the request is, for the error <see cref="Checked"/> throws: set before it starts.
    private string? _image;
    private string _what = "";
    private long _offset;
    private bool _inline;

    public RbdCompletion(RbdCompletionPool pool)
    {
        _pool = pool;
        _self = GCHandle.Alloc(this);
    }

    /// <summary>
    /// Names the request for its error: "Could not WHAT 'IMAGE' at offset OFFSET"; <paramref name="inline"/>:
    /// its success may be delivered on librbd's thread.
    /// </summary>
    public RbdCompletion Describe(string? image, string what, long offset, bool inline)
    {
        _image = image;
        _what = what;
        _offset = offset;
        _inline = inline;
        return this;
    }

    /// <summary>
    /// Creates the rbd_completion_t for one request, pinning <paramref name="buffer"/> (may be empty)
    /// until the request completes. The caller passes the result to a librbd rbd_aio_* call and,
    /// when that call refuses the request at once, to <see cref="Abandon"/>.
    /// </summary>
    public IntPtr Start(ReadOnlyMemory<byte> buffer, out byte* pointer)
    {
        _pin = buffer.Pin();
        pointer = (byte*)_pin.Pointer;
        int created = RbdNative.AioCreateCompletion(GCHandle.ToIntPtr(_self), (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void>)&OnComplete, out var completion);
        if (created < 0)
        {
            _pin.Dispose();
            _pool.Return(this);
            RbdErrors.ThrowIfFailed("Could not start an RBD request", created);
        }

        return completion;
    }

    /// <summary>The request was refused by its rbd_aio_* call (no callback will come): completes with <paramref name="result"/>.</summary>
    public void Abandon(IntPtr completion, int result)
    {
        RbdNative.AioRelease(completion);
        _pin.Dispose();
        _core.SetResult(result);
    }

    public ValueTask<long> Task => new(this, _core.Version);

    /// <summary>The request, failing with a <see cref="Strata.Block.BlockException"/> when librbd returns an error.</summary>
    public ValueTask Checked => new(this, _core.Version);

    public long GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            _pool.Return(this);
        }
    }

    void IValueTaskSource.GetResult(short token)
    {
        // Read before the result is taken: taking it returns this source to the pool.
        string? image = _image;
        string what = _what;
        long offset = _offset;
        long result = GetResult(token);
        if (result < 0)
        {
            throw RbdErrors.For($"Could not {what} '{image}' at offset {offset}", result);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <summary>Frees the handle librbd's callbacks find this object by; only once no request can use it.</summary>
    public void Free() => _self.Free();

    /// <summary>librbd's rbd_callback_t: the request ended with <c>rbd_aio_get_return_value</c>.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnComplete(IntPtr completion, IntPtr argument)
    {
        var self = (RbdCompletion)GCHandle.FromIntPtr(argument).Target!;
        long result = RbdNative.AioGetReturnValue(completion);
        RbdNative.AioRelease(completion);
        self._pin.Dispose();
        RbdHeapTrim.Completed();

        // A failure always goes to the thread pool: the error policy and the error reply may block.
        // Nothing here touches self after SetResult: taking the result returns it to the pool.
        bool inline = self._inline && result >= 0;
        self._core.RunContinuationsAsynchronously = !inline;
        if (!inline)
        {
            self._core.SetResult(result);
            return;
        }

        using (InlineCompletion.Running())
        {
            self._pool.CountInline();
            self._core.SetResult(result);
        }
    }
}
