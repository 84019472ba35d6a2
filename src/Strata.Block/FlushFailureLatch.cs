namespace Strata.Block;

/// <summary>
/// Makes a failed flush of a cache a node writes through fail every later flush too: the cache may
/// have dropped the writes it could not write back (Linux marks such page-cache pages clean after a
/// failed fdatasync; librbd's write-around cache reports a failed write-back at the next flush and
/// keeps nothing to retry), so a later flush would succeed without them, and a client that retried
/// its flush, or a request held under werror=stop and run again after cont, would be told its data
/// is durable when it is lost. QEMU's file-posix driver does the same (page_cache_inconsistent in
/// block/file-posix.c). Only a reopen of the image clears it: the daemon's restart.
/// </summary>
public sealed class FlushFailureLatch(string image)
{
    private string? _failure;

    /// <summary>Runs one flush: fails at once after an earlier failure; a failure now is remembered for good.</summary>
    public async ValueTask FlushAsync(Func<ValueTask> flush)
    {
        ArgumentNullException.ThrowIfNull(flush);
        ThrowIfFailed();
        try
        {
            await flush();
        }
        catch (BlockException e) when (e.Error is BlockError.Io or BlockError.NoSpace or BlockError.TimedOut)
        {
            Interlocked.CompareExchange(ref _failure, e.Message, null);
            throw;
        }
    }

    /// <summary>True once a flush failed.</summary>
    public bool Failed => Volatile.Read(ref _failure) is not null;

    private void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) is { } failure)
        {
            throw new BlockException(BlockError.Io,
                $"'{image}': an earlier flush failed ({failure}); writes it did not make durable may be lost, so no later flush can succeed until the image is opened again");
        }
    }
}
