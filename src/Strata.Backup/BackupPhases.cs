using System.Diagnostics;

namespace Strata.Backup;

/// <summary>
/// Where a backup's time goes, phase by phase (<c>backup create -v</c>): each <see cref="Lap"/> tells
/// the listener the phase that just ended and how long it took since the previous lap.
/// </summary>
public sealed class BackupPhases(Action<string>? listener)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _last;

    /// <summary>Ends the phase <paramref name="name"/>; <paramref name="detail"/> is added to its line.</summary>
    public void Lap(string name, string? detail = null)
    {
        var now = _clock.Elapsed;
        listener?.Invoke($"{name}: {(now - _last).TotalSeconds:0.000} s{(detail is null ? "" : $" ({detail})")}");
        _last = now;
    }
}
