namespace Strata.Cli.Monitor;

/// <summary>A one-line progress bar for merge_disk on a terminal, redrawn in place.</summary>
internal sealed class MergeProgress(TextWriter output) : IDisposable
{
    private const int Width = 40;
    private bool _shown;

    public void Show(long current, long total)
    {
        double fraction = total <= 0 ? 0 : Math.Clamp((double)current / total, 0, 1);
        int filled = (int)(fraction * Width);
        output.Write($"\r  merging [{new string('#', filled)}{new string('.', Width - filled)}] {fraction * 100,6:0.00}%");
        _shown = true;
    }

    public void Done()
    {
        if (_shown)
        {
            Show(1, 1);
            output.WriteLine();
            _shown = false;
        }
    }

    public void Dispose() => Done();
}
