using System.Text;
using System.Text.Json;
using Strata.Daemon.Control;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Daemon.Tests;

/// <summary>The control socket's message reader on bytes alone, no socket: framing, resynchronisation and bounds.</summary>
public sealed class QmpMessageReaderTests
{
    /// <summary>Good, bad and unfinished pieces of input that <see cref="WhereTheReadsEndNeverChangesWhatIsRead"/> strings together.</summary>
    private static readonly byte[][] Pieces =
    [
        .. new[]
        {
            "{\"execute\":\"query-status\"}", "{'execute':'x','id':[1,2.5e3,-0,null]}", "[\"\\u00e9\\ud83d\\ude00\"]", "tru", "true ", "12", "-",
            "{\"a\":", "}", "]", "\"open", "\"x\\u12\"", "{\"a\":1,\"a\":2}", "\n", "\t", new string('[', 20), new string(']', 20),
            "\"" + new string('y', 300) + "\"",
        }.Select(Encoding.UTF8.GetBytes),
        [0xFF], [0x00], [0xC3, 0x28], [(byte)'"', 0xE2, 0x82, 0xAC, (byte)'"'],
    ];

    private readonly ITestOutputHelper _output;

    public QmpMessageReaderTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void SeveralMessagesInOneReadAndOneMessageOverSeveralLinesAreCutWhereTheirBracketsBalance()
    {
        var inputs = Read("{\"execute\":\"a\"}{\"execute\":\"b\"} [1,\n2]\n\"s\" 42 true\n");
        Assert.Equal(["{\"execute\":\"a\"}", "{\"execute\":\"b\"}", "[1,2]", "\"s\"", "42", "true"], inputs.Select(Text));
    }

    [Fact]
    public void SingleQuotedStringsAndTheApostropheEscapeAreReadAsQemuReadsThem()
    {
        var value = Assert.Single(Read("{'execute': 'it\\'s \"quoted\"', \"b\": \"\\'\"}\n")).Value;
        Assert.Equal("it's \"quoted\"", value.GetProperty("execute").GetString());
        Assert.Equal("'", value.GetProperty("b").GetString());
    }

    [Fact]
    public void EscapesAndSurrogatePairsDecodeAndALoneHalfIsAnError()
    {
        var value = Assert.Single(Read("[\"\\u0041\\n\\/\\ud83d\\ude00\\u0000\", \"\u00e9\"]")).Value;
        Assert.Equal("A\n/\U0001F600\0", value[0].GetString());
        Assert.Equal("\u00e9", value[1].GetString());
        Assert.Equal("JSON parse error, \\ud83d is not a valid Unicode character", Assert.Single(Read("\"\\ud83d\\u0041\"\n")).Error);
        Assert.Equal("JSON parse error, \\u12\" is not a valid Unicode character", Assert.Single(Read("\"\\u12\"\n")).Error);
    }

    [Fact]
    public void OverlongAndSurrogateUtf8AreInvalid()
    {
        foreach (byte[] bad in new[] { new byte[] { 0xC0, 0x80 }, [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80] })
        {
            var input = Assert.Single(new QmpMessageReader().Push([(byte)'"', .. bad, (byte)'"']));
            Assert.Equal("JSON parse error, invalid UTF-8 sequence in string", input.Error);
        }
    }

    [Fact]
    public void AfterALexicalErrorTheRestOfTheBrokenMessageIsSkippedWithoutMoreErrors()
    {
        var inputs = Read("{\"execute\":\"que\nry\", \"arguments\": {}}}]\n{\"execute\":\"good\"}\n");
        Assert.Equal(2, inputs.Count);
        Assert.Contains("control character U+000A", inputs[0].Error, StringComparison.Ordinal);
        Assert.Equal("{\"execute\":\"good\"}", Text(inputs[1]));

        foreach (string broken in new[] { "{\"a\": 01, \"b\": {\"c\": [{}]}}\n", "{\"a\":tru\u0001e}", "{\"a\": \"\u0002\", \"b\": [1, {\"c\": 2}] }  " })
        {
            var after = Read(broken + "{\"execute\":\"good\"}");
            Assert.True(after.Count == 2 && after[0].Error is not null, $"{broken}: {string.Join(" | ", after.Select(Describe))}");
            Assert.Equal("{\"execute\":\"good\"}", Text(after[1]));
        }
    }

    [Fact]
    public void AControlCharacterAbandonsAnUnfinishedMessageWithOneError()
    {
        var inputs = Read("{\"execute\": [1, {\"a\":\u0000{\"execute\":\"good\"}");
        Assert.Equal(2, inputs.Count);
        Assert.Equal("JSON parse error, stray control character U+0000", inputs[0].Error);
        Assert.Equal("{\"execute\":\"good\"}", Text(inputs[1]));
    }

    [Fact]
    public void AStrayClosingBracketAloneIsOneError()
    {
        var inputs = Read("}\n]{\"execute\":\"good\"}");
        Assert.Equal(["JSON parse error, expecting value", "JSON parse error, expecting value"], inputs.Take(2).Select(i => i.Error));
        Assert.Equal("{\"execute\":\"good\"}", Text(inputs[2]));
    }

    [Fact]
    public void NestingToTheBoundParsesAndOneLevelMoreIsOneErrorForTheWholeMessage()
    {
        int bound = QmpMessageReader.MaxNesting;
        var deep = Assert.Single(Read(new string('[', bound) + new string(']', bound)));
        Assert.Null(deep.Error);
        var objects = Assert.Single(Read(string.Concat(Enumerable.Repeat("{\"a\":", bound)) + "1" + new string('}', bound)));
        Assert.Null(objects.Error);

        var inputs = Read(new string('[', bound + 1) + "\"]]]\"" + new string(']', bound + 1) + "{\"execute\":\"good\"}");
        Assert.Equal(2, inputs.Count);
        Assert.StartsWith("JSON nesting depth limit exceeded", inputs[0].Error, StringComparison.Ordinal);
        Assert.Equal("{\"execute\":\"good\"}", Text(inputs[1]));
    }

    [Fact]
    public void AMessageOfTheSizeBoundIsReadAndOneByteMoreIsRefusedAndSkipped()
    {
        const int Bound = 64;
        string exact = "{\"execute\":\"" + new string('x', Bound - 14) + "\"}";
        Assert.Equal(Bound, exact.Length);
        Assert.Null(Assert.Single(new QmpMessageReader(Bound).Push(Encoding.ASCII.GetBytes(exact))).Error);

        var reader = new QmpMessageReader(Bound);
        string over = "{\"execute\":\"" + new string('x', 10 * Bound) + "\", \"b\": [{}]}";
        var inputs = reader.Push(Encoding.ASCII.GetBytes(over + "{\"execute\":\"good\"}"));
        Assert.Equal(2, inputs.Count);
        Assert.Equal($"QMP message larger than {Bound} bytes", inputs[0].Error);
        Assert.Equal("{\"execute\":\"good\"}", Text(inputs[1]));
    }

    [Fact]
    public void DuplicateKeysAnywhereAreAnError()
    {
        Assert.Equal("JSON parse error, duplicate key", Assert.Single(Read("{\"a\":1,\"a\":1}")).Error);
        Assert.Equal("JSON parse error, duplicate key", Assert.Single(Read("[{\"b\":{\"a\":1,\"\\u0061\":2}}]")).Error);
        Assert.Null(Assert.Single(Read("[{\"a\":1},{\"a\":1}]")).Error);
    }

    [Theory]
    [InlineData("[1,]", "JSON parse error, expecting value")]
    [InlineData("{\"a\":1,}", "JSON parse error, key is not a string in object")]
    [InlineData("[1 2]", "JSON parse error, expected separator in list")]
    [InlineData("{\"a\":1 \"b\":2}", "JSON parse error, expected separator in dict")]
    [InlineData("{\"a\" 1}", "JSON parse error, missing : in object pair")]
    [InlineData("{1:2}", "JSON parse error, key is not a string in object")]
    [InlineData("[tru]", "JSON parse error, invalid keyword 'tru'")]
    [InlineData("[\"\\x\"]", "JSON parse error, invalid escape sequence in string")]
    [InlineData("[01]", "JSON parse error, malformed number (a leading 0 is a number of its own)")]
    [InlineData("[1.x]", "JSON parse error, malformed number ('x' where a digit belongs)")]
    public void MalformedJsonIsOneErrorInQemusWords(string message, string error) =>
        Assert.Equal(error, Read(message + " ").First().Error);

    /// <summary>
    /// Seeded: a stream of good and bad messages read at once and read in random pieces (down to one
    /// byte) gives the same messages and errors: where a read ends never changes what is read.
    /// </summary>
    [Fact]
    public void WhereTheReadsEndNeverChangesWhatIsRead()
    {
        int seed = Workload.NewSeed();
        _output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        for (int round = 0; round < 200; round++)
        {
            var stream = new List<byte>();
            for (int i = random.Next(1, 8); i > 0; i--)
            {
                stream.AddRange(Pieces[random.Next(Pieces.Length)]);
                if (random.Next(4) == 0)
                {
                    stream.Add((byte)random.Next(256));
                }
            }

            byte[] bytes = [.. stream, (byte)'\n'];
            var whole = new QmpMessageReader(256).Push(bytes).Select(Describe).ToList();
            var reader = new QmpMessageReader(256);
            var pieces = new List<string>();
            for (int at = 0; at < bytes.Length;)
            {
                int length = Math.Min(bytes.Length - at, random.Next(1, 6));
                pieces.AddRange(reader.Push(bytes.AsSpan(at, length)).Select(Describe));
                at += length;
            }

            Assert.True(whole.SequenceEqual(pieces), $"seed {seed}, round {round}: {Convert.ToHexString(bytes)}");
        }
    }

    private static string Describe(QmpInput input) => input.Error ?? input.Value.GetRawText();

    private static List<QmpInput> Read(string text) => [.. new QmpMessageReader().Push(Encoding.UTF8.GetBytes(text))];

    private static string Text(QmpInput input)
    {
        Assert.True(input.Error is null, input.Error);
        return JsonSerializer.Serialize(input.Value);
    }
}
