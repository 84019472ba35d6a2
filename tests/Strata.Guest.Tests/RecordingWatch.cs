namespace Strata.Guest.Tests;

/// <summary>A freeze watch that records what it was told, in order.</summary>
internal sealed class RecordingWatch : IFreezeWatch
{
    private readonly Lock _lock = new();
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lock)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>The connection and deadline of the last arm.</summary>
    public (bool WithConnection, TimeSpan ThawAfter) LastArm { get; private set; }

    public void Arm(string socketPath, System.Runtime.InteropServices.SafeHandle? connection, TimeSpan thawAfter)
    {
        lock (_lock)
        {
            _lines.Add("arm");
            LastArm = (connection is not null, thawAfter);
        }
    }

    public void Lease(string socketPath, TimeSpan thawAfter)
    {
        lock (_lock)
        {
            _lines.Add("lease");
        }
    }

    public void Disarm(string socketPath)
    {
        lock (_lock)
        {
            _lines.Add("disarm");
        }
    }
}
