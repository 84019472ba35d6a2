using System.Buffers;

namespace Strata.Daemon.Control;

/// <summary>
/// Cuts a control connection's byte stream into messages: each complete JSON value (clients may send
/// several per line, or one over several lines) becomes one <see cref="QmpInput"/>, and so does each
/// bad message, as one error. A message ends where its brackets balance, as in QEMU's
/// qobject/json-streamer.c. Feed it bytes as they arrive; no socket is needed (the fuzz targets use it
/// so). Bounds, each an error for the client, never a reason to drop the connection:
/// <list type="bullet">
/// <item>a message of more than <see cref="DefaultMaxMessageBytes"/> (or as given) is refused, and its
/// bytes are dropped as they come until its brackets balance: memory per connection stays bounded;</item>
/// <item>nesting deeper than <see cref="MaxNesting"/> levels (QEMU's bound) is refused the same way;</item>
/// <item>after a lexical error the message in progress is abandoned and reading starts afresh at the
/// next resynchronisation point (see <see cref="JsonLexer"/>), so a string that never ends cannot hold
/// the connection: its first control character (a newline, at the latest) ends it.</item>
/// </list>
/// </summary>
public sealed class QmpMessageReader
{
    /// <summary>The longest message a client may send.</summary>
    public const int DefaultMaxMessageBytes = 1024 * 1024;

    /// <summary>Objects and arrays nested deeper than this are refused.</summary>
    public const int MaxNesting = 1024;

    /// <summary>Above this, the message buffer is not kept for the next message.</summary>
    private const int KeptBufferBytes = 64 * 1024;

    private readonly int _maxMessageBytes;
    private readonly JsonLexer _lexer = new();
    private ArrayBufferWriter<byte> _message = new();
    private int _depth;

    // True once the message being read was answered with an error: its tokens are dropped until its
    // brackets balance, so that the rest of it is not taken for new messages.
    private bool _discarding;

    public QmpMessageReader(int maxMessageBytes = DefaultMaxMessageBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessageBytes, 1);
        _maxMessageBytes = maxMessageBytes;
    }

    /// <summary>Reads <paramref name="bytes"/>; returns the messages and errors they complete, in order.</summary>
    public IReadOnlyList<QmpInput> Push(ReadOnlySpan<byte> bytes)
    {
        var inputs = new List<QmpInput>();
        foreach (byte b in bytes)
        {
            bool consumed;
            do
            {
                var kind = _lexer.Feed(b, out consumed);
                if (consumed && !_discarding && (_lexer.InToken || kind != JsonTokenKind.None || _message.WrittenCount > 0))
                {
                    Keep(b, inputs);
                }

                if (kind != JsonTokenKind.None)
                {
                    OnToken(kind, inputs);
                }
            }
            while (!consumed);
        }

        return inputs;
    }

    private void Keep(byte b, List<QmpInput> inputs)
    {
        if (_message.WrittenCount >= _maxMessageBytes)
        {
            Refuse($"QMP message larger than {_maxMessageBytes} bytes", inputs);
            return;
        }

        _message.GetSpan(1)[0] = b;
        _message.Advance(1);
    }

    private void OnToken(JsonTokenKind kind, List<QmpInput> inputs)
    {
        switch (kind)
        {
            case JsonTokenKind.Error:
                // The message in progress is abandoned whatever its depth: the lexer no longer knows
                // whether it is inside a string, so the brackets that follow cannot be trusted.
                if (!_discarding)
                {
                    inputs.Add(QmpInput.Failure(_lexer.ErrorDescription));
                }

                Reset();
                return;
            case JsonTokenKind.LeftBrace or JsonTokenKind.LeftBracket:
                if (++_depth > MaxNesting && !_discarding)
                {
                    Refuse($"JSON nesting depth limit exceeded (more than {MaxNesting} levels)", inputs);
                }

                break;
            case JsonTokenKind.RightBrace or JsonTokenKind.RightBracket:
                _depth = Math.Max(0, _depth - 1);
                break;
        }

        if (_depth == 0)
        {
            if (!_discarding)
            {
                inputs.Add(JsonMessageParser.Parse(_message.WrittenMemory, MaxNesting));
            }

            Reset();
        }
    }

    /// <summary>Answers the message in progress with <paramref name="error"/> and drops the rest of it.</summary>
    private void Refuse(string error, List<QmpInput> inputs)
    {
        inputs.Add(QmpInput.Failure(error));
        _discarding = true;
        Forget();
    }

    private void Reset()
    {
        _depth = 0;
        _discarding = false;
        Forget();
    }

    private void Forget()
    {
        if (_message.Capacity > KeptBufferBytes)
        {
            _message = new ArrayBufferWriter<byte>();
        }
        else
        {
            _message.ResetWrittenCount();
        }
    }
}
