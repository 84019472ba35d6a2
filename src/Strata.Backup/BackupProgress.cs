namespace Strata.Backup;

/// <summary>One percentage over a backup's two phases, weighted by their bytes: the copy, then the hashing of the touched chunks.</summary>
internal sealed class BackupProgress(long copyBytes, long hashBytes, Action<double>? percent)
{
    private readonly long _total = Math.Max(1, copyBytes + hashBytes);
    private long _hashed;

    /// <summary>The copy's own percentage (0 to 100).</summary>
    public void Copying(double copyPercent) => percent?.Invoke(copyPercent * copyBytes / _total);

    /// <summary>Another hashed chunk of <paramref name="bytes"/>; calls never overlap.</summary>
    public void Hashed(long bytes)
    {
        _hashed += bytes;
        percent?.Invoke((copyBytes + _hashed) * 100.0 / _total);
    }
}
