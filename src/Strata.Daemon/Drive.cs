using Strata.Block;
using Strata.Formats;

namespace Strata.Daemon;

/// <summary>
/// A guest's disk: the stable name it is exported under, the request gate every guest request passes
/// through, and the node chain behind it (DESIGN.md, "Drive").
/// </summary>
public sealed partial class Drive : IAsyncDisposable
{
    private int _closed;

    private Drive(DriveSpec spec, RequestGate gate)
    {
        Spec = spec;
        Gate = gate;
    }

    public string Id => Spec.Id;

    public DriveSpec Spec { get; }

    public RequestGate Gate { get; }

    public IBlockNode Root => Gate.Root;

    public bool ReadOnly => Spec.ReadOnly || Gate.IsReadOnly;

    public static async Task<Drive> OpenAsync(DriveSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var options = new ImageOpenOptions { Format = spec.Format, ReadOnly = spec.ReadOnly, Direct = spec.Direct };
        var root = await ImageOpener.OpenAsync(spec.File, options, cancellationToken);
        return new Drive(spec, new RequestGate(root));
    }

    /// <summary>Waits for requests in flight, flushes and closes the image (a qcow2 image clears its dirty bit).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        using var drain = await Gate.DrainAsync();
        try
        {
            if (!ReadOnly)
            {
                await Gate.Root.FlushAsync();
            }
        }
        finally
        {
            await Gate.Root.DisposeAsync();
        }
    }
}
