using Strata.Nbd.Protocol;

namespace Strata.Nbd.Client;

public sealed record NbdClientOptions
{
    /// <summary>Negotiate NBD_OPT_STRUCTURED_REPLY (needed for block status).</summary>
    public bool StructuredReplies { get; init; } = true;

    /// <summary>Metadata contexts to select with NBD_OPT_SET_META_CONTEXT.</summary>
    public IReadOnlyList<string> MetaContexts { get; init; } = [NbdWire.BaseAllocation];

    /// <summary>Use the old NBD_OPT_EXPORT_NAME instead of NBD_OPT_GO.</summary>
    public bool UseExportName { get; init; }
}
