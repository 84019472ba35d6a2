using System.CommandLine;

namespace Strata.Cli;

/// <summary>`strata demo`: the whole workflow, end to end, on local files.</summary>
public static class DemoCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var command = new Command("demo", "Run the whole Strata workflow on local files and show each step.");
        command.SetAction(_ =>
        {
            output.WriteLine("demo: not yet");
            error.Flush();
            return 0;
        });
        return command;
    }
}
