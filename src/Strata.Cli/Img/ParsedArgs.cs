namespace Strata.Cli.Img;

/// <summary>The options (in command-line order) and positional arguments of one command.</summary>
public sealed class ParsedArgs
{
    public List<KeyValuePair<string, string?>> Options { get; } = [];

    public List<string> Positionals { get; } = [];

    public bool Has(string name) => Options.Exists(o => o.Key == name);

    /// <summary>The last value given for an option (later ones win, as with getopt loops).</summary>
    public string? Get(string name)
    {
        string? value = null;
        foreach (var (key, v) in Options)
        {
            if (key == name)
            {
                value = v;
            }
        }

        return value;
    }

    public IEnumerable<string> GetAll(string name) => Options.Where(o => o.Key == name).Select(o => o.Value ?? "");
}
