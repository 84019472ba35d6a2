using System.Text;

namespace Strata.Cli.Img;

/// <summary>Lays out a command's manual page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS.</summary>
public static class ManualText
{
    public static string Build(string name, string summary, string synopsis, string description,
        IReadOnlyList<(string Option, string Meaning)> options, string exitStatus)
    {
        ArgumentNullException.ThrowIfNull(options);
        var text = new StringBuilder();
        text.AppendLine("NAME").AppendLine($"    strata img {name} - {summary}").AppendLine();
        text.AppendLine("SYNOPSIS").AppendLine("    " + synopsis).AppendLine();
        text.AppendLine("DESCRIPTION");
        foreach (string line in description.Split('\n'))
        {
            text.AppendLine("    " + line);
        }

        text.AppendLine();
        if (options.Count > 0)
        {
            text.AppendLine("OPTIONS");
            foreach (var (option, meaning) in options)
            {
                text.AppendLine("    " + option);
                foreach (string line in meaning.Split('\n'))
                {
                    text.AppendLine("        " + line);
                }
            }

            text.AppendLine();
        }

        text.AppendLine("EXIT STATUS");
        foreach (string line in exitStatus.Split('\n'))
        {
            text.AppendLine("    " + line);
        }

        return text.ToString();
    }
}
