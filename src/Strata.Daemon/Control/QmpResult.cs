using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>The outcome of a command: a value to return, or an error class and description.</summary>
public sealed record QmpResult(Action<Utf8JsonWriter>? WriteReturn, string? ErrorClass = null, string? ErrorDescription = null)
{
    public static QmpResult Empty { get; } = new(w =>
    {
        w.WriteStartObject();
        w.WriteEndObject();
    });

    public static QmpResult Error(string description, string errorClass = "GenericError") => new(null, errorClass, description);
}
