using System.Text;

namespace Strata.TestKit;

/// <summary>
/// Everything a child process writes on one stream, kept as written (not split into lines, so a
/// test can compare it byte for byte) and readable while the child still runs, so a timeout can
/// report what it printed so far.
/// </summary>
internal sealed class OutputCapture
{
    // Guards itself: the pump appends while tests read.
    private readonly StringBuilder _text = new();

    public OutputCapture(StreamReader reader) => Completion = Task.Run(() => PumpAsync(reader));

    /// <summary>Ends when the stream reaches its end: every process holding the pipe has closed it.</summary>
    public Task Completion { get; }

    public string Text
    {
        get
        {
            lock (_text)
            {
                return _text.ToString();
            }
        }
    }

    private async Task PumpAsync(StreamReader reader)
    {
        var buffer = new char[16384];
        try
        {
            int n;
            while ((n = await reader.ReadAsync(buffer)) > 0)
            {
                lock (_text)
                {
                    _text.Append(buffer, 0, n);
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The process object was disposed while the pipe was open: what was read is kept.
        }
    }
}
