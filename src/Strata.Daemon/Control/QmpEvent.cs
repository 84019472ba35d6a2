using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>An asynchronous message to every control client (qmp-spec.rst, "Asynchronous events").</summary>
/// <param name="Name">The event name, e.g. JOB_STATUS_CHANGE.</param>
/// <param name="WriteData">Writes the "data" object.</param>
public sealed record QmpEvent(string Name, Action<Utf8JsonWriter> WriteData)
{
    /// <summary>When it happened; sent as seconds and microseconds since the epoch.</summary>
    public DateTimeOffset Timestamp { get; init; } = DateTimeOffset.UtcNow;
}
