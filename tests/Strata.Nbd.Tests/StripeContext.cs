using Strata.Nbd.Server.MetaContexts;

namespace Strata.Nbd.Tests;

/// <summary>A toy metadata context, "strata:toy": stripes of a fixed size whose flags alternate 0, 1, 0, 1, ….</summary>
public sealed class StripeContext(long stripe) : INbdMetaContext
{
    public const string ContextName = "strata:toy";

    public string Name => ContextName;

    public ValueTask<NbdMetaExtent> GetExtentAsync(long offset, long length, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new NbdMetaExtent(Math.Min(stripe - (offset % stripe), length), (uint)(offset / stripe % 2)));
}
