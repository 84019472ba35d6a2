namespace Strata.Guest;

/// <summary>
/// Cuts what an agent sends into lines, in bounded memory. qemu-ga writes one JSON reply per line
/// (qga/main.c, send_response: the reply, then "\n"); before the reply to guest-sync-delimited it
/// writes the byte 0xFF (qga/qapi-schema.json, guest-sync-delimited), which can never occur in UTF-8
/// JSON, so it marks where the stream is in step again. Leading 0xFF bytes of a line are dropped (a
/// late reply to an earlier sync starts with one); any other 0xFF makes the line garbage, which the
/// caller rejects when it parses it.
/// </summary>
internal sealed class AgentLineReader(Stream stream, int maxLineBytes)
{
    public const byte Delimiter = 0xFF;

    private byte[] _buffer = new byte[Math.Min(4096, maxLineBytes + 1)];
    private int _start;
    private int _end;

    /// <summary>The next line without its "\n" (and without a "\r" before it); null when the agent closed the connection.</summary>
    public async ValueTask<byte[]?> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                int from = _start;
                _start = newline + 1;
                while (from < newline && _buffer[from] == Delimiter)
                {
                    from++;
                }

                int to = newline > from && _buffer[newline - 1] == '\r' ? newline - 1 : newline;
                return _buffer[from..to];
            }

            if (_end - _start > maxLineBytes)
            {
                throw new GuestAgentException(GuestAgentErrorKind.Protocol, $"the agent sent a line longer than {maxLineBytes} bytes");
            }

            if (!await FillAsync(cancellationToken))
            {
                return null;
            }
        }
    }

    /// <summary>
    /// Discards everything up to and including the next 0xFF; false when the connection closed first.
    /// At most <paramref name="maxDiscard"/> bytes are skipped, so a stream of garbage ends the wait.
    /// </summary>
    public async ValueTask<bool> SkipPastDelimiterAsync(long maxDiscard, CancellationToken cancellationToken)
    {
        long discarded = 0;
        while (true)
        {
            int delimiter = Array.IndexOf(_buffer, Delimiter, _start, _end - _start);
            if (delimiter >= 0)
            {
                // The line after the delimiter is the sync reply; the byte itself is consumed here.
                _start = delimiter + 1;
                return true;
            }

            discarded += _end - _start;
            _start = _end;
            if (discarded > maxDiscard)
            {
                throw new GuestAgentException(GuestAgentErrorKind.Protocol, $"the agent sent more than {maxDiscard} bytes without the 0xFF of guest-sync-delimited");
            }

            if (!await FillAsync(cancellationToken))
            {
                return false;
            }
        }
    }

    /// <summary>Reads more bytes into the buffer, compacting it first and growing it up to the line limit.</summary>
    private async ValueTask<bool> FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, maxLineBytes + 1));
        }

        int n = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
        _end += n;
        return n > 0;
    }
}
