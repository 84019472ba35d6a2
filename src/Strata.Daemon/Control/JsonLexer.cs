namespace Strata.Daemon.Control;

/// <summary>
/// Turns bytes into JSON tokens one byte at a time, so a token may span reads. It checks what a
/// token may contain (RFC 8259 section 7: no raw control character in a string; section 6: the
/// number grammar) but not what a string means: escapes and UTF-8 are decoded and checked by
/// <see cref="JsonMessageParser"/>, once the whole token is known. QEMU's lexer
/// (qobject/json-lexer.c) draws the same line, and accepts single-quoted strings as we do.
/// <para>
/// After a lexical error the lexer skips input up to a resynchronisation point, where a new message
/// can begin: a control character other than tab (a newline, typically: clients send one message a
/// line), a byte 0xFE or 0xFF, or an opening brace or bracket that follows the error, a closing
/// bracket or a newline directly (blanks aside). Any other opening bracket is inside the rest of the
/// message that failed, and skipping it spares the client an error for each of its pieces; QEMU
/// resynchronises at every bracket and answers such pieces with more errors. A client that is not
/// sure where the parser stands sends a control character (qmp-spec.rst, "Forcing the JSON parser
/// into known-good state").
/// </para>
/// </summary>
internal sealed class JsonLexer
{
    private JsonLexerState _state = JsonLexerState.Start;
    private byte _quote;
    private long _position;

    // While recovering: whether the last byte skipped (blanks aside) ended something, so that an
    // opening bracket here can begin a new message.
    private bool _atBoundary;

    /// <summary>Offset, from the first byte fed, of the first byte of the last token that began.</summary>
    public long TokenStart { get; private set; }

    /// <summary>True between the first and the last byte of a token.</summary>
    public bool InToken => _state is not (JsonLexerState.Start or JsonLexerState.Recovery);

    /// <summary>Why the last <see cref="JsonTokenKind.Error"/> was returned, in words for the client.</summary>
    public string ErrorDescription { get; private set; } = "";

    /// <summary>
    /// Feeds one byte; returns the kind of the token that ended (<see cref="JsonTokenKind.None"/> while
    /// inside a token, between tokens, or skipping after an error). When <paramref name="consumed"/> is
    /// false the token ended just before <paramref name="b"/> (a number or keyword ends only where
    /// something else begins), and the caller feeds <paramref name="b"/> again.
    /// </summary>
    public JsonTokenKind Feed(byte b, out bool consumed)
    {
        consumed = true;
        var kind = Step(b, ref consumed);
        if (consumed)
        {
            _position++;
        }

        return kind;
    }

    /// <summary>The end of the input: ends a number or keyword in progress; anything else unfinished is an error.</summary>
    public JsonTokenKind End()
    {
        var state = _state;
        _state = JsonLexerState.Start;
        return state switch
        {
            JsonLexerState.Zero or JsonLexerState.Integer or JsonLexerState.Fraction or JsonLexerState.ExponentDigits => JsonTokenKind.Number,
            JsonLexerState.Keyword => JsonTokenKind.Keyword,
            JsonLexerState.Start or JsonLexerState.Recovery => JsonTokenKind.None,
            _ => Fail("the input ends inside a token"),
        };
    }

    private JsonTokenKind Step(byte b, ref bool consumed)
    {
        switch (_state)
        {
            case JsonLexerState.Start:
                return Begin(b);
            case JsonLexerState.Recovery:
                if (b >= 0xFE || (b < 0x20 && b != (byte)'\t') || (b is (byte)'{' or (byte)'[' && _atBoundary))
                {
                    _state = JsonLexerState.Start;
                    consumed = false;
                }
                else if (b != (byte)' ' && b != (byte)'\t')
                {
                    _atBoundary = b is (byte)'}' or (byte)']';
                }

                return JsonTokenKind.None;
            case JsonLexerState.String:
                if (b == _quote)
                {
                    _state = JsonLexerState.Start;
                    return JsonTokenKind.String;
                }

                if (b == (byte)'\\')
                {
                    _state = JsonLexerState.StringEscape;
                }

                return InString(b);
            case JsonLexerState.StringEscape:
                _state = JsonLexerState.String;
                return InString(b);
            case JsonLexerState.Minus:
                return b switch
                {
                    (byte)'0' => Continue(JsonLexerState.Zero),
                    >= (byte)'1' and <= (byte)'9' => Continue(JsonLexerState.Integer),
                    _ => FailNumber(b),
                };
            case JsonLexerState.Zero:
                return b switch
                {
                    >= (byte)'0' and <= (byte)'9' => Fail("malformed number (a leading 0 is a number of its own)"),
                    _ => AfterDigits(b, ref consumed),
                };
            case JsonLexerState.Integer:
                return b is >= (byte)'0' and <= (byte)'9' ? JsonTokenKind.None : AfterDigits(b, ref consumed);
            case JsonLexerState.Dot:
                return b is >= (byte)'0' and <= (byte)'9' ? Continue(JsonLexerState.Fraction) : FailNumber(b);
            case JsonLexerState.Fraction:
                return b switch
                {
                    >= (byte)'0' and <= (byte)'9' => JsonTokenKind.None,
                    (byte)'e' or (byte)'E' => Continue(JsonLexerState.Exponent),
                    _ => EndBefore(JsonTokenKind.Number, ref consumed),
                };
            case JsonLexerState.Exponent:
                return b switch
                {
                    (byte)'+' or (byte)'-' => Continue(JsonLexerState.ExponentSign),
                    >= (byte)'0' and <= (byte)'9' => Continue(JsonLexerState.ExponentDigits),
                    _ => FailNumber(b),
                };
            case JsonLexerState.ExponentSign:
                return b is >= (byte)'0' and <= (byte)'9' ? Continue(JsonLexerState.ExponentDigits) : FailNumber(b);
            case JsonLexerState.ExponentDigits:
                return b is >= (byte)'0' and <= (byte)'9' ? JsonTokenKind.None : EndBefore(JsonTokenKind.Number, ref consumed);
            default:
                return b is >= (byte)'a' and <= (byte)'z' ? JsonTokenKind.None : EndBefore(JsonTokenKind.Keyword, ref consumed);
        }
    }

    private JsonTokenKind Begin(byte b)
    {
        TokenStart = _position;
        switch (b)
        {
            case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n':
                return JsonTokenKind.None;
            case (byte)'{':
                return JsonTokenKind.LeftBrace;
            case (byte)'}':
                return JsonTokenKind.RightBrace;
            case (byte)'[':
                return JsonTokenKind.LeftBracket;
            case (byte)']':
                return JsonTokenKind.RightBracket;
            case (byte)':':
                return JsonTokenKind.Colon;
            case (byte)',':
                return JsonTokenKind.Comma;
            case (byte)'"' or (byte)'\'':
                _quote = b;
                return Continue(JsonLexerState.String);
            case (byte)'-':
                return Continue(JsonLexerState.Minus);
            case (byte)'0':
                return Continue(JsonLexerState.Zero);
            case >= (byte)'1' and <= (byte)'9':
                return Continue(JsonLexerState.Integer);
            case >= (byte)'a' and <= (byte)'z':
                return Continue(JsonLexerState.Keyword);
            case >= 0x21 and < 0x7F:
                return Fail($"stray '{(char)b}'");
            case < 0x20 or 0x7F:
                return Fail($"stray control character U+{b:X4}");
            default:
                return Fail($"stray byte 0x{b:X2} (not the start of any JSON token)");
        }
    }

    /// <summary>A byte inside a string (or just after a backslash there): anything but a control character or 0xFE/0xFF.</summary>
    private JsonTokenKind InString(byte b) => b switch
    {
        < 0x20 => Fail($"control character U+{b:X4} inside a string (escape it, e.g. \\n or \\u{b:x4})"),
        >= 0xFE => Fail($"byte 0x{b:X2} inside a string (never valid UTF-8)"),
        _ => JsonTokenKind.None,
    };

    /// <summary>After the integer part: a fraction or exponent may follow, or the number ends before this byte.</summary>
    private JsonTokenKind AfterDigits(byte b, ref bool consumed) => b switch
    {
        (byte)'.' => Continue(JsonLexerState.Dot),
        (byte)'e' or (byte)'E' => Continue(JsonLexerState.Exponent),
        _ => EndBefore(JsonTokenKind.Number, ref consumed),
    };

    private JsonTokenKind Continue(JsonLexerState next)
    {
        _state = next;
        return JsonTokenKind.None;
    }

    private JsonTokenKind EndBefore(JsonTokenKind kind, ref bool consumed)
    {
        _state = JsonLexerState.Start;
        consumed = false;
        return kind;
    }

    private JsonTokenKind FailNumber(byte b) =>
        Fail(b is >= 0x21 and < 0x7F ? $"malformed number ('{(char)b}' where a digit belongs)" : $"malformed number (byte 0x{b:X2} where a digit belongs)");

    private JsonTokenKind Fail(string why)
    {
        _state = JsonLexerState.Recovery;
        _atBoundary = true;
        ErrorDescription = $"JSON parse error, {why}";
        return JsonTokenKind.Error;
    }
}
