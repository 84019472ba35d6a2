using System.Text;

namespace Strata.Nbd.Tests;

/// <summary>
/// Random control-socket input for fuzz-style tests: mutations of valid commands that keep the message
/// whole (one message in, one reply out), and junk that may cut or merge messages. Only commands
/// without side effects are mutated, so no mutation can stop the daemon or touch a disk.
/// </summary>
public static class QmpMutations
{
    private static readonly string[] Templates =
    [
        """{"execute":"query-status"}""",
        """{"execute":"query-block","id":7}""",
        """{"execute":"query-jobs","arguments":{}}""",
        """{"execute":"query-block-jobs","id":"x"}""",
        """{"execute":"query-commands"}""",
        """{"execute":"job-dismiss","arguments":{"id":"nope"}}""",
        """{"execute":"job-pause","arguments":{"id":"nope"},"id":[1,{"k":null}]}""",
        """{"execute":"block-job-cancel","arguments":{"device":"nope"}}""",
        """{"execute":"transaction","arguments":{"actions":[]}}""",
        """{"execute":"no-such-command"}""",
    ];

    private static readonly string[] Scalars = ["5", "-0.5e3", "true", "false", "null", "\"str\"", "'single'", "[]", "{}", "[1,2]"];

    private static readonly byte[] JunkAlphabet =
        [.. "{}[]:,\"'\\ \t\r\nabcdefnrtuxyz0123456789-+.eE%"u8, 0x00, 0x01, 0x1B, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF8, 0xFE, 0xFF];

    /// <summary>A valid command changed so that it is still exactly one message (its reply may be an error).</summary>
    public static byte[] Whole(Random random)
    {
        string template = Templates[random.Next(Templates.Length)];
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(template));
        switch (random.Next(8))
        {
            case 0:
                bytes.InsertRange(1, "\"execute\":\"query-block\","u8.ToArray());
                break;
            case 1:
                bytes.InsertRange(InsideString(bytes, random), StringBytes(random));
                break;
            case 2:
                bytes.InsertRange(InsideString(bytes, random), Escape(random));
                break;
            case 3:
                int after = AfterStructural(bytes, random);
                bytes.InsertRange(after, Enumerable.Range(0, random.Next(1, 4)).Select(_ => " \t\r\n"u8[random.Next(4)]));
                break;
            case 4:
                int arguments = template.IndexOf("\"arguments\":{", StringComparison.Ordinal);
                bytes.InsertRange(arguments < 0 ? 1 : arguments + 13, arguments < 0 ? "\"arguments\":{\"zz\":1},"u8.ToArray() : "\"zz\":1,"u8.ToArray());
                break;
            case 5:
                return Encoding.UTF8.GetBytes($$"""{"execute":{{Scalars[random.Next(Scalars.Length)]}}}""");
            case 6:
                return random.Next(2) == 0 ? [(byte)'[', .. bytes, (byte)']'] : Encoding.UTF8.GetBytes(Scalars[random.Next(Scalars.Length)]);
            default:
                int depth = random.Next(1, 60); // echoed in the reply, which the test client reads with System.Text.Json's default depth of 64
                return Encoding.UTF8.GetBytes($$"""{"execute":"query-status","id":{{new string('[', depth)}}{{new string(']', depth)}}}""");
        }

        return [.. bytes];
    }

    /// <summary>Random bytes, or a valid command with bytes flipped, inserted or deleted anywhere.</summary>
    public static byte[] Junk(Random random)
    {
        if (random.Next(2) == 0)
        {
            var junk = new byte[random.Next(1, 48)];
            for (int i = 0; i < junk.Length; i++)
            {
                junk[i] = random.Next(4) == 0 ? (byte)random.Next(256) : JunkAlphabet[random.Next(JunkAlphabet.Length)];
            }

            return junk;
        }

        var bytes = new List<byte>(Encoding.UTF8.GetBytes(Templates[random.Next(Templates.Length)]));
        for (int edits = random.Next(1, 4); edits > 0 && bytes.Count > 0; edits--)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(3))
            {
                case 0:
                    bytes[at] = JunkAlphabet[random.Next(JunkAlphabet.Length)];
                    break;
                case 1:
                    bytes.Insert(at, (byte)random.Next(256));
                    break;
                default:
                    bytes.RemoveAt(at);
                    break;
            }
        }

        return [.. bytes];
    }

    /// <summary>Printable ASCII as it is, every other byte as \xNN; at most 200 bytes shown.</summary>
    public static string Show(byte[] bytes) =>
        string.Concat(bytes.Take(200).Select(b => b is >= 0x20 and < 0x7F and not (byte)'\\' ? ((char)b).ToString() : $"\\x{b:X2}"));

    /// <summary>Bytes that may stand inside a string without ending it: no quote, backslash or control byte; UTF-8 valid or not.</summary>
    private static byte[] StringBytes(Random random)
    {
        var bytes = new byte[random.Next(1, 5)];
        for (int i = 0; i < bytes.Length; i++)
        {
            do
            {
                bytes[i] = (byte)random.Next(0x20, 0xFE);
            }
            while (bytes[i] is (byte)'"' or (byte)'\\' or 0x7F);
        }

        return bytes;
    }

    /// <summary>A backslash and what follows it: a good escape, a surrogate, a short or bad \u, an unknown letter.</summary>
    private static byte[] Escape(Random random)
    {
        string hex = string.Concat(Enumerable.Range(0, random.Next(5)).Select(_ => "0123456789abcdefABCDEF"[random.Next(22)]));
        string[] escapes = ["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\'", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\u" + hex, "\\q", "\\x41"];
        return Encoding.UTF8.GetBytes(escapes[random.Next(escapes.Length)]);
    }

    /// <summary>A position just after an opening quote or inside a double-quoted string (the templates hold no escapes).</summary>
    private static int InsideString(List<byte> bytes, Random random) => Pick(bytes, random, insideStrings: true);

    /// <summary>A position just after a structural character outside strings, where whitespace is insignificant.</summary>
    private static int AfterStructural(List<byte> bytes, Random random) => Pick(bytes, random, insideStrings: false);

    private static int Pick(List<byte> bytes, Random random, bool insideStrings)
    {
        var positions = new List<int>();
        bool inString = false;
        for (int i = 0; i < bytes.Count; i++)
        {
            inString ^= bytes[i] == '"';
            if (insideStrings ? inString : !inString && bytes[i] is (byte)'{' or (byte)'[' or (byte)',' or (byte)':')
            {
                positions.Add(i + 1);
            }
        }

        return positions[random.Next(positions.Count)];
    }
}
