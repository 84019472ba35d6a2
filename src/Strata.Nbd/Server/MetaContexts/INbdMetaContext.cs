namespace Strata.Nbd.Server.MetaContexts;

/// <summary>
/// One metadata context an export offers (proto.md, "Metadata querying"): its name, which queries of
/// NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT select it, and the extents NBD_CMD_BLOCK_STATUS
/// reports for it. The server knows no context by name: an export carries a list of these
/// (<see cref="NbdExport.MetaContexts"/>), and a new one is added there.
/// </summary>
/// <remarks>
/// Contract for callers (the server keeps it, so providers never re-check): <c>0 &lt;= offset</c>,
/// <c>0 &lt; length</c>, <c>offset + length &lt;=</c> the export's size, and the client negotiated this
/// context on this connection. The provider answers with the first run at <c>offset</c>
/// in its own boundaries (allocation at the image's clusters, a dirty bitmap at its granularity); the
/// server asks again from where that run ends and merges neighbours with equal flags. Context ids are
/// the connection's: assigned when the client sets its contexts, never chosen by a provider.
/// </remarks>
public interface INbdMetaContext
{
    /// <summary>The full name, <c>namespace:leaf</c>: "base:allocation", "qemu:dirty-bitmap:t0", …</summary>
    string Name { get; }

    /// <summary>
    /// Whether <paramref name="query"/> selects this context. A SET query must name it exactly; a LIST
    /// query may also be a prefix ending in ':' ("base:", "qemu:", "qemu:dirty-bitmap:"), which lists
    /// every context under it (proto.md, "Metadata querying"; qemu docs/interop/nbd.rst).
    /// </summary>
    bool Answers(string query, bool listing) =>
        query == Name || (listing && query.EndsWith(':') && Name.StartsWith(query, StringComparison.Ordinal));

    /// <summary>The first run at <c>offset</c>, 1 to <paramref name="length"/> bytes long, with its flags.</summary>
    ValueTask<NbdMetaExtent> GetExtentAsync(long offset, long length, CancellationToken cancellationToken);
}
