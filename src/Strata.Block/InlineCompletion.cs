using System.Runtime.CompilerServices;

namespace Strata.Block;

/// <summary>
/// Lets a guest request that a storage library completes on its own callback thread (librbd's)
/// continue there, up to its reply, instead of being handed to the thread pool: the hand-off costs
/// a thread's wake-up per request, most of what separated a served RBD image from librbd's own
/// client (docs/benchmarks/rbd.md). Three parties must agree, each for what it runs after the
/// request's completion and before its next wait:
/// <list type="bullet">
/// <item>the caller (the NBD connection) <see cref="Allow"/>s it around the call, because what it
/// does after the request never blocks there: it sends a reply only if the socket takes it at once,
/// and otherwise, and before anything else, leaves the thread (<see cref="Leave"/>);</item>
/// <item>the <see cref="RequestGate"/> takes the caller's allowance and <see cref="OfferTo">offers</see>
/// it to its root alone, for a read or write the root gets in one call (its own bookkeeping after
/// the call only counts and marks bitmaps);</item>
/// <item>the driver of that root completes inline only a request that was offered to it and
/// succeeded, and marks the thread meanwhile (<see cref="IsRunning"/>).</item>
/// </list>
/// A layer over the driver (a qcow2 image on RBD, an overlay) is the root instead, so its requests
/// to the driver are never offered and its code never runs on the callback thread. Anything that
/// might still be reached there hops off first: the gate admits no request on such a thread, and
/// the rbd driver starts none.
/// </summary>
public static class InlineCompletion
{
    [ThreadStatic]
    private static bool t_allowed;

    [ThreadStatic]
    private static object? t_offeredTo;

    [ThreadStatic]
    private static bool t_running;

    /// <summary>
    /// True on a storage library's callback thread while it runs a completed request's continuation:
    /// nothing may block here, start I/O, or wait for another thread (<see cref="Leave"/> first).
    /// </summary>
    public static bool IsRunning => t_running;

    /// <summary>
    /// Around the start of one gate request (disposed before it is awaited): its continuation may run
    /// inline. The caller promises that, while <see cref="IsRunning"/>, it neither blocks nor starts I/O.
    /// </summary>
    public static Scope Allow()
    {
        t_allowed = true;
        return new Scope(ScopeKind.Allowance);
    }

    /// <summary>The caller's allowance, taken once by the gate request that starts first (nested requests get none).</summary>
    internal static bool TakeAllowance()
    {
        bool allowed = t_allowed;
        t_allowed = false;
        return allowed;
    }

    /// <summary>Around the gate's one call into <paramref name="node"/>: a request the node starts in it may complete inline.</summary>
    internal static Scope OfferTo(IBlockNode node)
    {
        t_offeredTo = node;
        return new Scope(ScopeKind.Offer);
    }

    /// <summary>For a driver, as it starts a request: whether the request may complete inline.</summary>
    public static bool IsOfferedTo(IBlockNode node) => ReferenceEquals(t_offeredTo, node);

    /// <summary>For a driver's callback, around completing a request inline.</summary>
    public static Scope Running()
    {
        t_running = true;
        return new Scope(ScopeKind.Running);
    }

    /// <summary>
    /// <c>await InlineCompletion.Leave()</c>: continues on the thread pool when on a callback thread
    /// (<see cref="IsRunning"/>), else at once.
    /// </summary>
    public static LeaveAwaitable Leave() => default;

    /// <summary>
    /// Awaits <paramref name="start"/>'s request after leaving a callback thread (for drivers asked to
    /// start one there). <paramref name="start"/> is static and takes its arguments as <paramref name="request"/>,
    /// so the caller's path that does not come here allocates nothing for it.
    /// </summary>
    public static async ValueTask ElsewhereAsync<TRequest>(TRequest request, Func<TRequest, ValueTask> start)
    {
        await Leave();
        await start(request);
    }

    internal enum ScopeKind
    {
        None,
        Allowance,
        Offer,
        Running,
    }

    /// <summary>Ends what <see cref="Allow"/>, <see cref="OfferTo"/> or <see cref="Running"/> began on this thread (the default ends nothing).</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly ScopeKind _kind;

        internal Scope(ScopeKind kind) => _kind = kind;

        public void Dispose()
        {
            switch (_kind)
            {
                case ScopeKind.Allowance:
                    t_allowed = false;
                    break;
                case ScopeKind.Offer:
                    t_offeredTo = null;
                    break;
                case ScopeKind.Running:
                    t_running = false;
                    break;
            }
        }
    }

    /// <summary>The awaitable of <see cref="Leave"/>.</summary>
    public readonly struct LeaveAwaitable : ICriticalNotifyCompletion
    {
        public LeaveAwaitable GetAwaiter() => this;

        public bool IsCompleted => !t_running;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) =>
            ThreadPool.QueueUserWorkItem(static c => c(), continuation, preferLocal: false);

        public void UnsafeOnCompleted(Action continuation) =>
            ThreadPool.UnsafeQueueUserWorkItem(static c => c(), continuation, preferLocal: false);
    }
}
