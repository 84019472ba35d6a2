using System.Diagnostics;

namespace Strata.Block;

/// <summary>
/// The one place guest requests pass through on their way to a node graph: it validates them once
/// (so drivers never re-check), pads them to the node's alignment (RequestGate.Padding.cs), splits
/// them at the node's transfer limit, counts them in flight,
/// tells write observers, and can drain: hold new requests and wait for those in flight to finish,
/// so that the graph can be changed with no request seeing half a change. A request that fails in
/// the layers meets its side's error policy (RequestGate.ErrorPolicy.cs): reported, or held until
/// the gate is resumed and then run again.
/// </summary>
public sealed partial class RequestGate
{
    // Protects _inFlight, _holds, _drained and _resumed (and the error policy's state); held only for counter updates, never across I/O.
    private readonly Lock _lock = new();

    // Copy-on-write: replaced whole under _lock, read without it on every write. Empty (the same
    // empty array) when nothing observes, so an unobserved write pays one field read.
    private IWriteObserver[] _observers = [];
    private IBlockNode _root;
    private int _inFlight;
    private int _holds;
    private TaskCompletionSource? _drained;
    private TaskCompletionSource _resumed = NewSignal(completed: true);
    private IBlockNode[] _flushAlso = [];
    private int _waiting;
    private int _heldCount;
    private long _longestWait;
    private TimeSpan _drainTimeout = DefaultDrainTimeout;

    public RequestGate(IBlockNode root)
    {
        ArgumentNullException.ThrowIfNull(root);
        _root = root;
    }

    /// <summary>The node requests go to. Replace it only while holding a drain.</summary>
    public IBlockNode Root => _root;

    public int InFlight
    {
        get
        {
            lock (_lock)
            {
                return _inFlight;
            }
        }
    }

    public long Size => _root.Size;

    /// <summary>
    /// Raised when the last request held by a drain (or a pause) has been let in: how many requests
    /// waited at the gate, and the longest any of them waited. This is the pause the guest saw.
    /// </summary>
    public event Action<int, TimeSpan>? HoldEnded;

    public bool IsReadOnly => (_root.Capabilities & NodeCapabilities.ReadOnly) != 0;

    /// <summary>
    /// Adds a write observer (see <see cref="IWriteObserver"/>). Add and remove observers under a
    /// drain, so that no request in flight sees one call of a pair and not the other.
    /// </summary>
    public void AddObserver(IWriteObserver observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        lock (_lock)
        {
            _observers = [.. _observers, observer];
        }
    }

    /// <summary>Removes a write observer; false when it was not there. Under a drain, as <see cref="AddObserver"/>.</summary>
    public bool RemoveObserver(IWriteObserver observer)
    {
        lock (_lock)
        {
            if (Array.IndexOf(_observers, observer) < 0)
            {
                return false;
            }

            _observers = _observers.Length == 1 ? [] : [.. _observers.Where(o => !ReferenceEquals(o, observer))];
            return true;
        }
    }

    /// <summary>Swaps the root; the caller holds a drain (<see cref="DrainAsync(CancellationToken)"/>).</summary>
    public void ReplaceRoot(IBlockNode newRoot, Drain proofOfDrain)
    {
        ArgumentNullException.ThrowIfNull(newRoot);
        ArgumentNullException.ThrowIfNull(proofOfDrain);
        if (!proofOfDrain.IsHeldOn(this))
        {
            throw new InvalidOperationException("the root may only change while the gate is drained");
        }

        _root = newRoot;
    }

    /// <summary>
    /// Makes every flush through the gate also flush <paramref name="node"/> (a former root, or a
    /// cancelled merge's base: no longer in the path of writes, but it may still hold unflushed data
    /// the guest wrote) until one of those
    /// flushes succeeds or <see cref="StopFlushing"/> says it has reached stable storage. The caller
    /// holds a drain.
    /// </summary>
    public void FlushAlso(IBlockNode node, Drain proofOfDrain)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(proofOfDrain);
        if (!proofOfDrain.IsHeldOn(this))
        {
            throw new InvalidOperationException("a former root may only be registered while the gate is drained");
        }

        lock (_lock)
        {
            _flushAlso = [.. _flushAlso, node];
        }
    }

    /// <summary>Ends <see cref="FlushAlso"/> for <paramref name="node"/>: it was flushed after its last write, or closed.</summary>
    public void StopFlushing(IBlockNode node)
    {
        lock (_lock)
        {
            _flushAlso = [.. _flushAlso.Where(n => !ReferenceEquals(n, node))];
        }
    }

    /// <summary>How long a drain waits for requests in flight when its caller gives no timeout.</summary>
    /// <remarks>
    /// The guest is held meanwhile, so this is also the longest pause a graph change may cost it. A
    /// healthy request finishes in milliseconds and a flush of a slow disk in a few seconds; one still
    /// running after this long is taken as hung (a remote store that stopped answering), and the
    /// change is refused rather than waiting for it forever.
    /// </remarks>
    public static readonly TimeSpan DefaultDrainTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The timeout of <see cref="DrainAsync(CancellationToken)"/>; <see cref="DefaultDrainTimeout"/> unless set.</summary>
    public TimeSpan DrainTimeout
    {
        get => _drainTimeout;
        set
        {
            if (value <= TimeSpan.Zero && value != Timeout.InfiniteTimeSpan)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "a drain timeout is positive or infinite");
            }

            _drainTimeout = value;
        }
    }

    /// <summary>
    /// Holds new requests and waits until none is in flight, for at most <see cref="DrainTimeout"/>.
    /// Requests resume when the returned <see cref="Drain"/> is disposed. Drains nest.
    /// </summary>
    /// <exception cref="BlockException"><see cref="BlockError.TimedOut"/>: requests were still in flight at the deadline; the gate is released.</exception>
    public Task<Drain> DrainAsync(CancellationToken cancellationToken = default) => DrainAsync(_drainTimeout, cancellationToken);

    /// <summary>
    /// Holds new requests and waits until none is in flight, for at most <paramref name="timeout"/>
    /// (<see cref="Timeout.InfiniteTimeSpan"/>: no limit). Requests resume when the returned
    /// <see cref="Drain"/> is disposed. Drains nest.
    /// </summary>
    /// <remarks>
    /// A drain that fails, at its deadline (a <see cref="BlockException"/> with
    /// <see cref="BlockError.TimedOut"/>) or cancelled (<see cref="OperationCanceledException"/>),
    /// releases the requests it held before it throws: the guest goes on, the requests in flight go
    /// on, and the caller changes nothing.
    /// </remarks>
    public async Task<Drain> DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Task wait;
        lock (_lock)
        {
            if (_holds++ == 0)
            {
                _resumed = NewSignal(completed: false);
            }

            if (_inFlight == 0)
            {
                wait = Task.CompletedTask;
            }
            else
            {
                _drained ??= NewSignal(completed: false);
                wait = _drained.Task;
            }
        }

        var drain = new Drain(this);
        try
        {
            await wait.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            drain.Dispose();
            int stuck = InFlight;
            throw new BlockException(BlockError.TimedOut,
                $"{stuck} request{(stuck == 1 ? "" : "s")} still in flight after {timeout.TotalSeconds:0.###} s: gave up waiting for them to finish");
        }
        catch
        {
            drain.Dispose();
            throw;
        }

        return drain;
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        RunAsync(offset, buffer.Length, GuestRequest.Read, buffer, static (_, root, offset, buffer, cancellationToken) =>
            IsAligned(root, offset, buffer.Length)
                ? ReadSplitAsync(root, offset, buffer, cancellationToken)
                : ReadPaddedAsync(root, offset, buffer, cancellationToken), cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None,
        CancellationToken cancellationToken = default) =>
        RunAsync(offset, data.Length, GuestRequest.Write, (data, flags), static (gate, root, offset, request, cancellationToken) =>
            root.Limits.RequestAlignment <= 1
                ? WriteSplitAsync(root, offset, request.data, request.flags, cancellationToken)
                : gate.WritePaddedAsync(root, offset, request.data, request.flags, cancellationToken), cancellationToken);

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None,
        CancellationToken cancellationToken = default) =>
        RunAsync(offset, length, GuestRequest.Write, (length, flags), static (gate, root, offset, request, cancellationToken) =>
            root.Limits.RequestAlignment <= 1
                ? root.WriteZeroesAsync(offset, request.length, request.flags, cancellationToken)
                : gate.WriteZeroesPaddedAsync(root, offset, request.length, request.flags, cancellationToken), cancellationToken);

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        RunAsync(offset, length, GuestRequest.Write, length, static (gate, root, offset, length, cancellationToken) =>
            root.Limits.RequestAlignment <= 1
                ? root.DiscardAsync(offset, length, cancellationToken)
                : gate.DiscardAlignedPartAsync(root, offset, length, cancellationToken), cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        RunAsync(0, 0, GuestRequest.Flush, 0, static (gate, _, _, _, cancellationToken) => gate.FlushNodesAsync(cancellationToken), cancellationToken);

    /// <summary>What a guest request is to the gate: it decides admission, the write observers and the error policy's side.</summary>
    private enum GuestRequest
    {
        /// <summary>Admitted as a read, under rerror.</summary>
        Read,

        /// <summary>Modifies the image: admitted as a write, told to the write observers, under werror.</summary>
        Write,

        /// <summary>Admitted as a read (it changes no data), but its failure loses writes: under werror, as QEMU.</summary>
        Flush,
    }

    /// <summary>
    /// One guest request against the root: admitted by the gate, a modifying one told to the write
    /// observers before and after, counted in flight, and under its side's error policy
    /// (RequestGate.ErrorPolicy.cs): a failure the policy holds leaves the gate, waits out the stop and
    /// runs again from admission. <paramref name="request"/> carries the request's own arguments to
    /// the static <paramref name="run"/>, so nothing is allocated for it.
    /// </summary>
    private async ValueTask RunAsync<TRequest>(long offset, long length, GuestRequest kind, TRequest request,
        Func<RequestGate, IBlockNode, long, TRequest, CancellationToken, ValueTask> run, CancellationToken cancellationToken)
    {
        // Taken before anything can wait: the caller's allowance is for this request (InlineCompletion).
        bool inline = InlineCompletion.TakeAllowance() && kind != GuestRequest.Flush;
        await InlineCompletion.Leave();
        bool write = kind == GuestRequest.Write;
        while (true)
        {
            await EnterAsync(offset, length, write, cancellationToken);
            var observers = write ? Observers(length) : [];
            BlockException? held = null;
            try
            {
                if (observers.Length != 0)
                {
                    await BeforeWriteAsync(observers, offset, length, cancellationToken);
                }

                var root = _root;
                ValueTask pending;
                using (inline && IsOneCall(root, length) ? InlineCompletion.OfferTo(root) : default)
                {
                    pending = run(this, root, offset, request, cancellationToken);
                }

                await pending;
                return;
            }
            catch (BlockException e) when (HoldsAfter(e, write: kind != GuestRequest.Read, cancellationToken))
            {
                held = e;
            }
            finally
            {
                Written(observers, offset, length);
                Leave();
            }

            await RetryAfterHoldAsync(held, cancellationToken);
        }
    }

    /// <summary>Whether a request of <paramref name="length"/> bytes reaches <paramref name="root"/> as one call, unpadded and unsplit.</summary>
    private static bool IsOneCall(IBlockNode root, long length) => root.Limits.RequestAlignment <= 1 && length <= MaxPiece(root);

    /// <summary>
    /// Flushes the root and every former root (<see cref="FlushAlso"/>) without entering the gate: a
    /// guest flush does this once admitted, and the drive's owner does it when closing, under a drain
    /// or after giving up waiting for one. A former root whose flush succeeds is on stable storage
    /// after its last write and leaves the list; one whose flush fails stays for the next flush.
    /// </summary>
    public async ValueTask FlushNodesAsync(CancellationToken cancellationToken = default)
    {
        var also = Volatile.Read(ref _flushAlso);
        await _root.FlushAsync(cancellationToken);
        foreach (var node in also)
        {
            await node.FlushAsync(cancellationToken);
            StopFlushing(node);
        }
    }

    /// <summary>Block status of the whole chain at <paramref name="offset"/> (see <see cref="ChainStatus"/>).</summary>
    public async ValueTask<ChainExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await EnterAsync(offset, length, write: false, cancellationToken);
        try
        {
            var root = _root;
            return IsAligned(root, offset, length)
                ? await ChainStatus.GetAsync(root, offset, length, cancellationToken)
                : await GetBlockStatusPaddedAsync(root, offset, length, cancellationToken);
        }
        finally
        {
            Leave();
        }
    }

    /// <summary>
    /// Checks a request against the contract of <see cref="IBlockNode"/> (bounds, writability); throws
    /// <see cref="BlockError.InvalidArgument"/>. Alignment is not checked: the gate pads what is not aligned.
    /// </summary>
    public static void Validate(IBlockNode node, long offset, long length, bool write)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (offset < 0 || length < 0 || offset > node.Size - length)
        {
            throw BlockException.Invalid($"request at offset {offset} length {length} is beyond the end of the {node.Size}-byte disk");
        }

        if (write && (node.Capabilities & NodeCapabilities.ReadOnly) != 0)
        {
            throw BlockException.ReadOnly("the disk is read-only");
        }
    }

    private async ValueTask EnterAsync(long offset, long length, bool write, CancellationToken cancellationToken)
    {
        long waitStart = 0;
        while (true)
        {
            Task resumed;
            bool admitted = false;
            BlockException? invalid = null;
            (int Count, long Longest)? holdEnded = null;
            lock (_lock)
            {
                if (_holds == 0)
                {
                    admitted = true;
                    if (waitStart != 0)
                    {
                        holdEnded = EndWaitLocked(waitStart);
                    }

                    try
                    {
                        Validate(_root, offset, length, write);
                        _inFlight++;
                    }
                    catch (BlockException e)
                    {
                        invalid = e;
                    }
                }
                else if (waitStart == 0)
                {
                    waitStart = Stopwatch.GetTimestamp();
                    _waiting++;
                }

                resumed = _resumed.Task;
            }

            if (holdEnded is not null)
            {
                RaiseHoldEnded(holdEnded.Value);
            }

            if (admitted)
            {
                if (invalid is not null)
                {
                    throw invalid;
                }

                return;
            }

            try
            {
                await resumed.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                lock (_lock)
                {
                    holdEnded = EndWaitLocked(waitStart);
                }

                if (holdEnded is not null)
                {
                    RaiseHoldEnded(holdEnded.Value);
                }

                throw;
            }
        }
    }

    /// <summary>The observers an admitted write of <paramref name="length"/> bytes tells; read once, so its two calls go to the same ones.</summary>
    private IWriteObserver[] Observers(long length) => length > 0 ? Volatile.Read(ref _observers) : [];

    private static async ValueTask BeforeWriteAsync(IWriteObserver[] observers, long offset, long length, CancellationToken cancellationToken)
    {
        foreach (var observer in observers)
        {
            await observer.BeforeWriteAsync(offset, length, cancellationToken);
        }
    }

    // After the node's call, before Leave: a drain that completes has seen the mark.
    private static void Written(IWriteObserver[] observers, long offset, long length)
    {
        foreach (var observer in observers)
        {
            observer.OnWritten(offset, length);
        }
    }

    // A held request stops waiting (admitted or cancelled); the last one out reports the hold.
    private (int Count, long Longest)? EndWaitLocked(long waitStart)
    {
        long waited = Stopwatch.GetTimestamp() - waitStart;
        _longestWait = Math.Max(_longestWait, waited);
        _heldCount++;
        if (--_waiting > 0 || _holds > 0)
        {
            return null;
        }

        var ended = (_heldCount, _longestWait);
        _heldCount = 0;
        _longestWait = 0;
        return ended;
    }

    private void RaiseHoldEnded((int Count, long Longest) hold) =>
        HoldEnded?.Invoke(hold.Count, Stopwatch.GetElapsedTime(0, hold.Longest));

    private void Leave()
    {
        TaskCompletionSource? drained = null;
        lock (_lock)
        {
            if (--_inFlight == 0 && _drained is not null)
            {
                drained = _drained;
                _drained = null;
            }
        }

        drained?.TrySetResult();
    }

    private void Release()
    {
        TaskCompletionSource? resumed = null;
        lock (_lock)
        {
            if (--_holds == 0)
            {
                resumed = _resumed;
            }
        }

        resumed?.TrySetResult();
    }

    private static TaskCompletionSource NewSignal(bool completed)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed)
        {
            tcs.SetResult();
        }

        return tcs;
    }

    /// <summary>A held drain: while it lives, no request enters the gate.</summary>
    public sealed class Drain : IDisposable
    {
        private RequestGate? _gate;

        internal Drain(RequestGate gate) => _gate = gate;

        internal bool IsHeldOn(RequestGate gate) => ReferenceEquals(_gate, gate);

        public void Dispose()
        {
            Interlocked.Exchange(ref _gate, null)?.Release();
        }
    }
}
