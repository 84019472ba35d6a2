using System.Text.Json;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>qemu-img as the oracle on qcow2 images (installed on every test machine).</summary>
public static class QemuImg
{
    /// <summary>qemu-img check --output=json, parsed.</summary>
    public static JsonElement Check(string path)
    {
        var result = Processes.Run("qemu-img", "check", "--output=json", "-f", "qcow2", path);
        Assert.True(result.Stdout.Length > 0, $"qemu-img check printed nothing:\n{result}");
        using var doc = JsonDocument.Parse(result.Stdout);
        return doc.RootElement.Clone();
    }

    /// <summary>Asserts qemu-img check finds neither corruption nor leak.</summary>
    public static void AssertClean(string path, string context = "")
    {
        var result = Processes.Run("qemu-img", "check", "-f", "qcow2", path);
        Assert.True(result.ExitCode == 0, $"qemu-img check of {path} {context}:\n{result}");
    }

    public static JsonElement Info(string path)
    {
        string output = Processes.Ok("qemu-img", "info", "--output=json", path);
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.Clone();
    }
}
