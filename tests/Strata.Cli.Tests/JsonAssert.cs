using System.Text.Json;

namespace Strata.Cli.Tests;

/// <summary>Compares JSON documents by value, ignoring key order (qemu-img's order is a hash order).</summary>
public static class JsonAssert
{
    public static void Equivalent(string expected, string actual)
    {
        using var e = JsonDocument.Parse(expected);
        using var a = JsonDocument.Parse(actual);
        Assert.True(JsonElement.DeepEquals(e.RootElement, a.RootElement), $"expected:\n{expected}\nactual:\n{actual}");
    }
}
