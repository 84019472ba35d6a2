using System.Text;
using System.Text.Json;
using Strata.Daemon.Control;

namespace Strata.Fuzz;

/// <summary>
/// Checks a control session from both sides' bytes (qmp-spec.rst, "Server Greeting" and "Commands
/// Responses"): one greeting first; then every line the server sends is a JSON object that is a
/// success response, an error response (with its class and description) or an event; and every
/// message the client sent is answered exactly once — up to <c>quit</c>, after which nothing is read.
/// </summary>
internal static class QmpSessionChecker
{
    /// <summary>The members that name what a server line is: exactly one of them is present.</summary>
    private static readonly string[] Kinds = ["QMP", "return", "error", "event"];

    public static void Check(byte[] input, byte[] output, bool quitRequested)
    {
        ArgumentNullException.ThrowIfNull(output);
        string text = Encoding.UTF8.GetString(output);
        if (text.Length > 0 && !text.EndsWith("\r\n", StringComparison.Ordinal))
        {
            throw new FuzzFailure("the server's output ends inside a line");
        }

        string[] lines = text.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || Kind(lines[0]) != "QMP")
        {
            throw new FuzzFailure("the session does not start with the greeting");
        }

        int replies = 0;
        string? last = null;
        foreach (string line in lines.Skip(1))
        {
            last = Kind(line);
            replies += last is "return" or "error" ? 1 : last == "event" ? 0
                : throw new FuzzFailure($"the server sent a line that is no response or event: {Shorten(line)}");
        }

        // Each complete message, or each broken one, is one input of the reader and gets one reply.
        int messages = new QmpMessageReader().Push(input).Count;
        if (quitRequested)
        {
            // quit is answered, then the connection stops reading: the messages after it get nothing.
            if (last != "return" || replies > messages)
            {
                throw new FuzzFailure($"quit ended a session of {messages} messages after {replies} replies, the last a '{last}'");
            }
        }
        else if (replies != messages)
        {
            throw new FuzzFailure($"{messages} messages got {replies} replies");
        }
    }

    /// <summary>The one member that says what a server line is: QMP (the greeting), return, error or event.</summary>
    private static string Kind(string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FuzzFailure($"the server sent JSON that is not an object: {Shorten(line)}");
            }

            var kinds = Kinds.Where(k => root.TryGetProperty(k, out _)).ToList();
            if (kinds.Count != 1)
            {
                throw new FuzzFailure($"the server sent an object that is not one of greeting, response or event: {Shorten(line)}");
            }

            if (kinds[0] == "error"
                && (root.GetProperty("error") is not { ValueKind: JsonValueKind.Object } error
                    || !error.TryGetProperty("class", out var errorClass) || errorClass.ValueKind != JsonValueKind.String
                    || !error.TryGetProperty("desc", out var desc) || desc.ValueKind != JsonValueKind.String))
            {
                throw new FuzzFailure($"an error response without class and desc: {Shorten(line)}");
            }

            return kinds[0];
        }
        catch (JsonException e)
        {
            throw new FuzzFailure($"the server sent a line that is not JSON ({e.Message}): {Shorten(line)}");
        }
    }

    private static string Shorten(string line) => line.Length > 200 ? line[..200] + "…" : line;
}
