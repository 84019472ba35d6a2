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

    public void Arm(string socketPath)
    {
        lock (_lock)
        {
            _lines.Add("arm");
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
