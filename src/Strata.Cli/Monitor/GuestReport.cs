using System.Text.Json.Nodes;

namespace Strata.Cli.Monitor;

/// <summary>How the console shows the guest commands' replies (docs/guest.md), one line each.</summary>
internal static class GuestReport
{
    /// <summary>The line for a guest_cmd reply.</summary>
    public static string Line(string verb, JsonNode? reply) => verb switch
    {
        "begin_snapshot" => $"{reply?["guest"]}: {Plural(reply?["filesystems"], "file system")} frozen in {reply?["freeze-ms"]} ms; thawed by itself after {reply?["lease-ms"]} ms unless end_snapshot comes first",
        "end_snapshot" when reply?["expired"]?.GetValue<bool>() == true =>
            $"{reply?["guest"]}: was already thawed when its lease ended; a snapshot taken after that was refused",
        "end_snapshot" => $"{reply?["guest"]}: {Plural(reply?["filesystems"], "file system")} thawed after {reply?["frozen-ms"]} ms frozen",
        _ => $"{reply?["guest"]}: the agent answered in {reply?["time-ms"]} ms",
    };

    /// <summary>One guest of query-guests as info guests shows it.</summary>
    public static string InfoLine(JsonNode guest)
    {
        string drives = string.Join(", ", guest["drives"]?.AsArray().Select(d => d?.GetValue<string>()) ?? []);
        string agent = guest["responding"]?.GetValue<bool>() == true ? $"agent {guest["agent-version"]} answering" : "agent not answering";
        string state = guest["state"]?.GetValue<string>() == "frozen" ? $"frozen ({Plural(guest["filesystems"], "file system")})" : $"{guest["state"]}";
        return $"{guest["id"]}: {guest["socket"]}, drives {drives}; {agent}; {state}";
    }

    /// <summary>What a snapshot's reply says of the guests: frozen and each step's time, or why it is crash-consistent only.</summary>
    public static void WriteSnapshot(JsonNode? reply, TextWriter output, TextWriter error)
    {
        if (reply is not JsonObject result)
        {
            return;
        }

        if (result["timings"] is { } t)
        {
            foreach (var guest in result["guests"]?.AsArray() ?? [])
            {
                output.WriteLine($"{guest?["guest"]}: {Plural(guest?["filesystems"], "file system")} frozen for the switch");
            }

            output.WriteLine($"freeze {t["freeze-ms"]} ms, switch {t["switch-ms"]} ms, thaw {t["thaw-ms"]} ms");
        }

        foreach (var warning in result["warnings"]?.AsArray() ?? [])
        {
            error.WriteLine($"Warning: {warning}");
        }
    }

    private static string Plural(JsonNode? count, string noun) => $"{count} {noun}{(count?.ToString() == "1" ? "" : "s")}";
}
