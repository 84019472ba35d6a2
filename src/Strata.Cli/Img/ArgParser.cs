namespace Strata.Cli.Img;

/// <summary>
/// A getopt_long-style parser, so that options are spelled exactly as for qemu-img: bundled short
/// flags (<c>-pq</c>), attached or separate values (<c>-fqcow2</c>, <c>-f qcow2</c>), long options
/// with <c>=</c> or a separate value, options after positionals (GNU permutation), and <c>--</c>
/// ending the options.
/// </summary>
/// <param name="shortOptions">getopt's spelling: each letter, followed by ':' when it takes a value.</param>
/// <param name="longOptions">Each name, followed by '=' when it takes a value.</param>
public sealed class ArgParser(string shortOptions, params string[] longOptions)
{
    public ParsedArgs Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var result = new ParsedArgs();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg == "--")
            {
                result.Positionals.AddRange(args.Skip(i + 1));
                break;
            }

            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                int eq = arg.IndexOf('=', StringComparison.Ordinal);
                string name = eq < 0 ? arg[2..] : arg[2..eq];
                string? spec = longOptions.FirstOrDefault(o => o.TrimEnd('=') == name);
                if (spec is null)
                {
                    throw new CliException($"unrecognized option '--{name}'");
                }

                if (spec.EndsWith('='))
                {
                    string value = eq >= 0 ? arg[(eq + 1)..]
                        : i + 1 < args.Count ? args[++i]
                        : throw new CliException($"option '--{name}' requires an argument");
                    result.Options.Add(new(name, value));
                }
                else
                {
                    if (eq >= 0)
                    {
                        throw new CliException($"option '--{name}' doesn't allow an argument");
                    }

                    result.Options.Add(new(name, null));
                }

                continue;
            }

            if (arg.Length > 1 && arg[0] == '-')
            {
                for (int j = 1; j < arg.Length; j++)
                {
                    char c = arg[j];
                    int at = shortOptions.IndexOf(c, StringComparison.Ordinal);
                    if (at < 0 || c == ':')
                    {
                        throw new CliException($"invalid option -- '{c}'");
                    }

                    if (at + 1 < shortOptions.Length && shortOptions[at + 1] == ':')
                    {
                        string value = j + 1 < arg.Length ? arg[(j + 1)..]
                            : i + 1 < args.Count ? args[++i]
                            : throw new CliException($"option requires an argument -- '{c}'");
                        result.Options.Add(new(c.ToString(), value));
                        break;
                    }

                    result.Options.Add(new(c.ToString(), null));
                }

                continue;
            }

            result.Positionals.Add(arg);
        }

        return result;
    }
}
