namespace Strata.Daemon.Control;

/// <summary>
/// What <see cref="JsonLexer"/> recognised: the tokens of RFC 8259 section 2, plus QEMU's
/// single-quoted strings (qmp-spec.rst), or a byte that starts no token.
/// </summary>
public enum JsonTokenKind
{
    /// <summary>No token ended here: whitespace, skipped input, or the middle of a token.</summary>
    None,
    LeftBrace,
    RightBrace,
    LeftBracket,
    RightBracket,
    Colon,
    Comma,
    String,
    Number,

    /// <summary>A run of [a-z]; the parser accepts only true, false and null.</summary>
    Keyword,

    /// <summary>A byte that cannot continue the token in progress nor start one (a lexical error).</summary>
    Error,
}
