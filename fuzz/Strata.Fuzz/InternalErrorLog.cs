namespace Strata.Fuzz;

/// <summary>
/// A server's log, kept for one thing: the lines where it caught an exception it did not expect
/// ("… failed unexpectedly: System.…Exception: …"), answered the client with a generic error and
/// carried on. That keeps the server up, as it should, but it is a bug the fuzzer must see.
/// </summary>
internal sealed class InternalErrorLog
{
    private const string Marker = " failed unexpectedly: ";

    // Written by the server's threads, read after the session.
    private readonly Lock _lock = new();
    private string? _first;

    public void Write(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        if (line.Contains(Marker, StringComparison.Ordinal))
        {
            lock (_lock)
            {
                _first ??= line;
            }
        }
    }

    /// <summary>Throws <see cref="FuzzFailure"/> naming what failed and the exception's type when such a line was written.</summary>
    public void ThrowIfAny()
    {
        string? line;
        lock (_lock)
        {
            line = _first;
        }

        if (line is null)
        {
            return;
        }

        int marker = line.IndexOf(Marker, StringComparison.Ordinal);
        string exception = line[(marker + Marker.Length)..];
        int colon = exception.IndexOf(':', StringComparison.Ordinal);
        string type = colon > 0 ? exception[..colon] : exception;
        throw new FuzzFailure($"internal error {type} caught in: {line[..marker]}\n{exception}");
    }
}
