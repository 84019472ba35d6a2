using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>
/// Parses one complete JSON message (the bytes <see cref="QmpMessageReader"/> cut from the stream)
/// into a <see cref="JsonElement"/>, as strictly as QEMU's qobject/json-parser.c: a key twice in one
/// object, invalid UTF-8, a surrogate escape that is not half of a pair, an unknown escape or keyword
/// are errors, each with QEMU's words ("JSON parse error, duplicate key"). Every string is decoded
/// here, so a value that reaches a command holds only valid Unicode. The value is rebuilt with
/// <see cref="Utf8JsonWriter"/> and read back, so what System.Text.Json hands on is what was checked.
/// </summary>
internal sealed class JsonMessageParser
{
    private readonly ReadOnlyMemory<byte> _input;
    private readonly JsonLexer _lexer = new();
    private readonly Utf8JsonWriter _writer;
    private int _next;
    private JsonTokenKind _kind;
    private int _start;
    private int _end;

    private JsonMessageParser(ReadOnlyMemory<byte> input, Utf8JsonWriter writer)
    {
        _input = input;
        _writer = writer;
    }

    /// <summary>The value of <paramref name="message"/>, or why it is not one.</summary>
    public static QmpInput Parse(ReadOnlyMemory<byte> message, int maxNesting)
    {
        var output = new ArrayBufferWriter<byte>(Math.Max(256, message.Length));
        try
        {
            using (var writer = new Utf8JsonWriter(output, new JsonWriterOptions { MaxDepth = maxNesting + 1, SkipValidation = true }))
            {
                var parser = new JsonMessageParser(message, writer);
                parser.Next();
                parser.Value();
                parser.Next();
                if (parser._kind != JsonTokenKind.None)
                {
                    throw Error("expected the end of the message");
                }
            }

            using var document = JsonDocument.Parse(output.WrittenMemory, new JsonDocumentOptions { MaxDepth = maxNesting + 1 });
            return QmpInput.Of(document.RootElement.Clone());
        }
        catch (QmpException e)
        {
            return QmpInput.Failure(e.Message);
        }
    }

    private ReadOnlySpan<byte> Token => _input.Span[_start.._end];

    /// <summary>Moves to the next token; <see cref="JsonTokenKind.None"/> at the end of the message.</summary>
    private void Next()
    {
        var input = _input.Span;
        while (_next < input.Length)
        {
            var kind = _lexer.Feed(input[_next], out bool consumed);
            if (consumed)
            {
                _next++;
            }

            if (kind != JsonTokenKind.None)
            {
                Set(kind);
                return;
            }
        }

        Set(_lexer.End());
    }

    private void Set(JsonTokenKind kind)
    {
        _kind = kind == JsonTokenKind.Error ? throw new QmpException(_lexer.ErrorDescription) : kind;
        _start = (int)_lexer.TokenStart;
        _end = _next;
    }

    /// <summary>Parses the value that starts at the current token, which stays on its last token.</summary>
    private void Value()
    {
        switch (_kind)
        {
            case JsonTokenKind.LeftBrace:
                Object();
                break;
            case JsonTokenKind.LeftBracket:
                Array();
                break;
            case JsonTokenKind.String:
                _writer.WriteStringValue(DecodeString());
                break;
            case JsonTokenKind.Number:
                _writer.WriteRawValue(Token, skipInputValidation: true);
                break;
            case JsonTokenKind.Keyword:
                Keyword();
                break;
            default:
                throw Error("expecting value");
        }
    }

    private void Object()
    {
        _writer.WriteStartObject();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        Items(JsonTokenKind.RightBrace, "expected separator in dict", () =>
        {
            string key = _kind == JsonTokenKind.String ? DecodeString() : throw Error("key is not a string in object");
            if (!keys.Add(key))
            {
                throw Error("duplicate key");
            }

            Next();
            if (_kind != JsonTokenKind.Colon)
            {
                throw Error("missing : in object pair");
            }

            _writer.WritePropertyName(key);
            Next();
            Value();
        });
        _writer.WriteEndObject();
    }

    private void Array()
    {
        _writer.WriteStartArray();
        Items(JsonTokenKind.RightBracket, "expected separator in list", Value);
        _writer.WriteEndArray();
    }

    /// <summary>The items of an object or array, after its opening bracket: none, or <paramref name="item"/>s separated by commas, up to <paramref name="close"/>.</summary>
    private void Items(JsonTokenKind close, string missingSeparator, Action item)
    {
        Next();
        if (_kind == close)
        {
            return;
        }

        while (true)
        {
            item();
            Next();
            if (_kind == close)
            {
                return;
            }

            if (_kind != JsonTokenKind.Comma)
            {
                throw Error(missingSeparator);
            }

            Next();
        }
    }

    private void Keyword()
    {
        var token = Token;
        if (token.SequenceEqual("true"u8) || token.SequenceEqual("false"u8))
        {
            _writer.WriteBooleanValue(token[0] == (byte)'t');
        }
        else if (token.SequenceEqual("null"u8))
        {
            _writer.WriteNullValue();
        }
        else
        {
            throw Error($"invalid keyword '{Shorten(Encoding.ASCII.GetString(token))}'");
        }
    }

    /// <summary>
    /// The text of the current string token (quotes removed): the escapes of RFC 8259 section 7 plus
    /// QEMU's \', surrogate escapes only in pairs, raw bytes only as valid UTF-8 (RFC 3629).
    /// </summary>
    private string DecodeString()
    {
        var token = Token;
        var text = new StringBuilder(token.Length);
        int end = token.Length - 1;
        Span<char> pair = stackalloc char[2];
        for (int i = 1; i < end;)
        {
            byte b = token[i];
            if (b == (byte)'\\')
            {
                i = Unescape(token, i, end, text);
            }
            else if (b < 0x80)
            {
                text.Append((char)b);
                i++;
            }
            else
            {
                if (Rune.DecodeFromUtf8(token[i..end], out var rune, out int length) != OperationStatus.Done)
                {
                    throw Error("invalid UTF-8 sequence in string");
                }

                text.Append(pair[..rune.EncodeToUtf16(pair)]);
                i += length;
            }
        }

        return text.ToString();
    }

    /// <summary>Appends the escape at <paramref name="at"/> (a backslash) to <paramref name="text"/>; returns the index after it.</summary>
    private static int Unescape(ReadOnlySpan<byte> token, int at, int end, StringBuilder text)
    {
        char simple = token[at + 1] switch
        {
            (byte)'"' => '"',
            (byte)'\'' => '\'',
            (byte)'\\' => '\\',
            (byte)'/' => '/',
            (byte)'b' => '\b',
            (byte)'f' => '\f',
            (byte)'n' => '\n',
            (byte)'r' => '\r',
            (byte)'t' => '\t',
            (byte)'u' => '\0',
            _ => throw Error("invalid escape sequence in string"),
        };
        if (token[at + 1] != (byte)'u')
        {
            text.Append(simple);
            return at + 2;
        }

        int unit = Hex4(token, at + 2, end);
        int next = at + 6;
        if (char.IsHighSurrogate((char)unit) && next + 1 < end && token[next] == (byte)'\\' && token[next + 1] == (byte)'u'
            && Hex4(token, next + 2, end) is var low && char.IsLowSurrogate((char)low))
        {
            text.Append((char)unit).Append((char)low);
            return next + 6;
        }

        if (unit < 0 || char.IsSurrogate((char)unit))
        {
            throw Error($"{Shorten(Encoding.UTF8.GetString(token[at..Math.Min(at + 6, end + 1)]))} is not a valid Unicode character");
        }

        text.Append((char)unit);
        return next;
    }

    /// <summary>The four hex digits at <paramref name="at"/> as a number; -1 when there are not four before <paramref name="end"/>.</summary>
    private static int Hex4(ReadOnlySpan<byte> token, int at, int end) =>
        at + 4 <= end && int.TryParse(token.Slice(at, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value) ? value : -1;

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";

    private static QmpException Error(string what) => new($"JSON parse error, {what}");
}
