namespace Strata.Daemon.Control;

/// <summary>Where <see cref="JsonLexer"/> is inside a token (RFC 8259 section 6 for the number states).</summary>
internal enum JsonLexerState
{
    Start,

    /// <summary>After a lexical error: bytes are skipped up to a resynchronisation point.</summary>
    Recovery,
    String,
    StringEscape,
    Minus,
    Zero,
    Integer,
    Dot,
    Fraction,
    Exponent,
    ExponentSign,
    ExponentDigits,
    Keyword,
}
