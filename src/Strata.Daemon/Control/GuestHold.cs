using System.Diagnostics;
using System.Text.Json;
using Strata.Guest;

namespace Strata.Daemon.Control;

/// <summary>The guests held for one snapshot, what they say about its consistency, and its timings.</summary>
internal sealed class GuestHold
{
    private bool _exited;

    public List<GuestFreezeScope> Scopes { get; } = [];

    public List<string> Warnings { get; } = [];

    public TimeSpan Switch { get; set; }

    public TimeSpan Thaw { get; private set; }

    /// <summary>Leaves every scope (thawing what they froze); the thaws' problems become warnings.</summary>
    public async Task ExitAsync()
    {
        if (_exited)
        {
            return;
        }

        _exited = true;
        var clock = Stopwatch.StartNew();
        foreach (var scope in Scopes)
        {
            if (await scope.ExitAsync() is { } problem)
            {
                Warnings.Add(problem);
            }
        }

        Thaw = clock.Elapsed;
    }

    /// <summary>The reply's members: the guests frozen, each step's time, the warnings.</summary>
    public void Write(Utf8JsonWriter w)
    {
        if (Scopes.Any(s => s.Frozen))
        {
            w.WriteStartArray("guests");
            foreach (var scope in Scopes.Where(s => s.Frozen))
            {
                w.WriteStartObject();
                w.WriteString("guest", scope.Channel.Id);
                w.WriteNumber("filesystems", scope.FrozenFileSystems);
                w.WriteBoolean("frozen-by-snapshot", scope.FrozenHere);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            var frozenHere = Scopes.Where(s => s.FrozenHere).ToList();
            w.WriteStartObject("timings");
            w.WriteNumber("freeze-ms", Math.Round(frozenHere.Select(s => s.FreezeTime.TotalMilliseconds).DefaultIfEmpty(0).Max(), 3));
            w.WriteNumber("switch-ms", Math.Round(Switch.TotalMilliseconds, 3));
            w.WriteNumber("thaw-ms", Math.Round(frozenHere.Count > 0 ? Thaw.TotalMilliseconds : 0, 3));
            w.WriteEndObject();
        }

        if (Warnings.Count > 0)
        {
            w.WriteStartArray("warnings");
            foreach (string warning in Warnings)
            {
                w.WriteStringValue(warning);
            }

            w.WriteEndArray();
        }
    }

    public bool HasMembers => Scopes.Any(s => s.Frozen) || Warnings.Count > 0;
}
