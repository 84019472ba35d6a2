namespace Strata.Block.Live;

/// <summary>
/// Where the time of one live snapshot went. Only <see cref="Held"/> is time the guest waits: new
/// requests are held from the start of the drain until the roots change.
/// </summary>
/// <param name="Drain">Waiting for the requests in flight to finish (new ones already held).</param>
/// <param name="Switch">Attaching the overlays and swapping the roots, still holding new requests.</param>
/// <param name="Flush">Flushing the old images once the guest runs again.</param>
public sealed record SnapshotTimings(TimeSpan Drain, TimeSpan Switch, TimeSpan Flush)
{
    /// <summary>How long new guest requests were held.</summary>
    public TimeSpan Held => Drain + Switch;

    public override string ToString() =>
        $"guest held {Ms(Held)} (drain {Ms(Drain)}, switch {Ms(Switch)}), then old image flushed in {Ms(Flush)}";

    private static string Ms(TimeSpan t) => $"{t.TotalMilliseconds:0.000} ms";
}
