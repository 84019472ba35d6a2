using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>One message read from a control connection: a JSON value, or why the bytes were not one.</summary>
/// <param name="Value">The parsed value (valid only when <paramref name="Error"/> is null).</param>
/// <param name="Error">The reply's "desc" for input that is not JSON or passes a bound; null for a value.</param>
public readonly record struct QmpInput(JsonElement Value, string? Error)
{
    public static QmpInput Of(JsonElement value) => new(value, null);

    public static QmpInput Failure(string error) => new(default, error);
}
