using System.Text;

namespace Strata.Cli.Monitor;

/// <summary>
/// Reads a line from the terminal with history (up/down), cursor keys, home/end and backspace: the
/// little a console needs that <see cref="Console.ReadLine"/> does not give on Linux.
/// </summary>
internal sealed class LineEditor
{
    private const int MaxHistory = 500;
    private readonly List<string> _history = [];

    /// <summary>Returns the line, or null at end of input (Ctrl-D on an empty line).</summary>
    public string? ReadLine(string prompt)
    {
        Console.Write(prompt);
        var line = new StringBuilder();
        int cursor = 0;
        int recall = _history.Count;
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            switch (key.Key)
            {
                case ConsoleKey.Enter:
                    Console.WriteLine();
                    string text = line.ToString();
                    if (text.Trim().Length > 0 && (_history.Count == 0 || _history[^1] != text))
                    {
                        _history.Add(text);
                        if (_history.Count > MaxHistory)
                        {
                            _history.RemoveAt(0);
                        }
                    }

                    return text;
                case ConsoleKey.Backspace when cursor > 0:
                    line.Remove(--cursor, 1);
                    break;
                case ConsoleKey.Delete when cursor < line.Length:
                    line.Remove(cursor, 1);
                    break;
                case ConsoleKey.LeftArrow when cursor > 0:
                    cursor--;
                    break;
                case ConsoleKey.RightArrow when cursor < line.Length:
                    cursor++;
                    break;
                case ConsoleKey.Home:
                    cursor = 0;
                    break;
                case ConsoleKey.End:
                    cursor = line.Length;
                    break;
                case ConsoleKey.UpArrow when recall > 0:
                    recall--;
                    line.Clear().Append(_history[recall]);
                    cursor = line.Length;
                    break;
                case ConsoleKey.DownArrow when recall < _history.Count:
                    recall++;
                    line.Clear().Append(recall < _history.Count ? _history[recall] : "");
                    cursor = line.Length;
                    break;
                case ConsoleKey.D when key.Modifiers == ConsoleModifiers.Control && line.Length == 0:
                    Console.WriteLine();
                    return null;
                default:
                    if (!char.IsControl(key.KeyChar))
                    {
                        line.Insert(cursor++, key.KeyChar);
                    }

                    break;
            }

            Redraw(prompt, line, cursor);
        }
    }

    private static void Redraw(string prompt, StringBuilder line, int cursor)
    {
        // Return to the start of the line, rewrite it, clear what is left of a longer old line.
        Console.Write($"\r{prompt}{line}\u001b[K");
        int back = line.Length - cursor;
        if (back > 0)
        {
            Console.Write($"\u001b[{back}D");
        }
    }
}
