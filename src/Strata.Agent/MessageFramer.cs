namespace Strata.Agent;

/// <summary>
/// Cuts the byte stream from the host into JSON objects, one command each. The host may send 0xFF at
/// any time (guest-sync-delimited, qga/qapi-schema.json): it can never occur in UTF-8 JSON, so it
/// throws away whatever was half received, which is how a host that timed out or reconnected gets a
/// clean start. Bytes outside an object (whitespace, junk) are skipped; an object larger than
/// <see cref="MaxMessage"/> is dropped whole and reported as one oversized message.
/// </summary>
internal sealed class MessageFramer
{
    public const int MaxMessage = 64 * 1024;

    private readonly List<byte> _current = [];
    private int _depth;
    private bool _inString;
    private bool _escaped;
    private bool _oversized;

    /// <summary>Feeds received bytes; each complete object (or <c>null</c> for one that was too large) goes to <paramref name="onMessage"/>.</summary>
    public void Feed(ReadOnlySpan<byte> bytes, Action<byte[]?> onMessage)
    {
        ArgumentNullException.ThrowIfNull(onMessage);
        foreach (byte b in bytes)
        {
            if (b == 0xFF)
            {
                Reset();
                continue;
            }

            if (_depth == 0 && b != (byte)'{')
            {
                continue;
            }

            Append(b);
            if (_inString)
            {
                // A quote ends the string unless the byte before it was an escaping backslash.
                bool wasEscaped = _escaped;
                _escaped = !wasEscaped && b == (byte)'\\';
                _inString = wasEscaped || b != (byte)'"';
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
                    if (_depth == 0)
                    {
                        onMessage(_oversized ? null : [.. _current]);
                        Reset();
                    }

                    break;
            }
        }
    }

    private void Append(byte b)
    {
        if (_current.Count < MaxMessage)
        {
            _current.Add(b);
        }
        else
        {
            _oversized = true;
        }
    }

    private void Reset()
    {
        _current.Clear();
        _depth = 0;
        _inString = false;
        _escaped = false;
        _oversized = false;
    }
}
