using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>One argument a command accepts: its name and type (qapi/*.json in QEMU).</summary>
public readonly record struct QmpParameter(string Name, QmpType Type)
{
    /// <summary>
    /// Whether <paramref name="value"/> has this parameter's type. Null never has: an optional
    /// argument is left out, not sent as null (QEMU's visitors answer the same).
    /// </summary>
    public bool Accepts(JsonElement value) => Type switch
    {
        QmpType.String => value.ValueKind == JsonValueKind.String,
        QmpType.Integer => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
        QmpType.Boolean => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        QmpType.Array => value.ValueKind == JsonValueKind.Array,
        QmpType.StringOrObject => value.ValueKind is JsonValueKind.String or JsonValueKind.Object,
        _ => value.ValueKind == JsonValueKind.Object,
    };

    /// <summary>The type as QEMU's "Invalid parameter type for '…', expected: …" spells it.</summary>
    public string TypeName => Type switch
    {
        QmpType.String => "string",
        QmpType.Integer => "integer",
        QmpType.Boolean => "boolean",
        QmpType.Array => "array",
        QmpType.StringOrObject => "BlockdevRef",
        _ => "object",
    };
}
