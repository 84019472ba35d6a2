using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>Typed access to a command's "arguments" object, with QEMU's wording for what is wrong.</summary>
public readonly struct QmpArguments(JsonElement arguments)
{
    public string String(string name) =>
        OptionalString(name) ?? throw new QmpException($"Parameter '{name}' is missing");

    public string? OptionalString(string name)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new QmpException($"Invalid parameter type for '{name}', expected: string");
    }

    public long OptionalInt(string name, long fallback)
    {
        if (!TryGet(name, out var value))
        {
            return fallback;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long n)
            ? n
            : throw new QmpException($"Invalid parameter type for '{name}', expected: integer");
    }

    public bool OptionalBool(string name, bool fallback)
    {
        if (!TryGet(name, out var value))
        {
            return fallback;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new QmpException($"Invalid parameter type for '{name}', expected: boolean"),
        };
    }

    public JsonElement Array(string name)
    {
        if (!TryGet(name, out var value))
        {
            throw new QmpException($"Parameter '{name}' is missing");
        }

        return value.ValueKind == JsonValueKind.Array ? value : throw new QmpException($"Invalid parameter type for '{name}', expected: array");
    }

    /// <summary>The value of <paramref name="name"/> as it was sent; undefined when absent (for a member of more than one type).</summary>
    public JsonElement OptionalElement(string name) => TryGet(name, out var value) ? value : default;

    public JsonElement? OptionalArray(string name) => TryGet(name, out _) ? Array(name) : null;

    public JsonElement Object(string name)
    {
        if (!TryGet(name, out var value))
        {
            throw new QmpException($"Parameter '{name}' is missing");
        }

        return value.ValueKind == JsonValueKind.Object ? value : throw new QmpException($"Invalid parameter type for '{name}', expected: object");
    }

    private bool TryGet(string name, out JsonElement value)
    {
        value = default;
        return arguments.ValueKind == JsonValueKind.Object && arguments.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;
    }
}
