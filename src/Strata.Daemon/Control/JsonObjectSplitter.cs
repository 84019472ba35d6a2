namespace Strata.Daemon.Control;

/// <summary>
/// Cuts a byte stream into top-level JSON values, as QMP clients may send several per line or one
/// over several lines: counts braces and brackets outside strings. Whitespace between values is dropped.
/// </summary>
public sealed class JsonObjectSplitter
{
    private readonly int _maxBytes;
    private readonly List<byte> _current = [];
    private int _depth;
    private bool _inString;
    private bool _escaped;

    public JsonObjectSplitter(int maxBytes) => _maxBytes = maxBytes;

    /// <summary>Adds received bytes; returns the values they complete. Throws <see cref="IOException"/> past the size limit.</summary>
    public List<byte[]> Push(ReadOnlySpan<byte> bytes)
    {
        var complete = new List<byte[]>();
        foreach (byte b in bytes)
        {
            if (_current.Count == 0 && b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            {
                continue;
            }

            _current.Add(b);
            if (_current.Count > _maxBytes)
            {
                throw new IOException($"a control message exceeds {_maxBytes} bytes");
            }

            if (_inString)
            {
                if (_escaped)
                {
                    _escaped = false;
                }
                else if (b == '\\')
                {
                    _escaped = true;
                }
                else if (b == '"')
                {
                    _inString = false;
                }

                continue;
            }

            switch (b)
            {
                case (byte)'"':
                    _inString = true;
                    break;
                case (byte)'{' or (byte)'[':
                    _depth++;
                    break;
                case (byte)'}' or (byte)']':
                    _depth--;
                    break;
            }

            if (_depth <= 0 && (b is (byte)'}' or (byte)']' || b is (byte)'\n'))
            {
                // A closed object, or a bare scalar line: hand it to the parser (which reports errors).
                complete.Add([.. _current]);
                _current.Clear();
                _depth = 0;
            }
        }

        return complete;
    }
}
