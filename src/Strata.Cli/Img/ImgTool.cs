using System.Text;
using Strata.Block;

namespace Strata.Cli.Img;

/// <summary>
/// The dispatcher of <c>strata img COMMAND …</c>. Every failure becomes one line on stderr,
/// <c>strata img: &lt;message&gt;</c>, and a non-zero exit; no stack trace reaches the user.
/// </summary>
public static class ImgTool
{
    public const string Prefix = "strata img: ";

    public static IReadOnlyList<ImgSubcommand> Commands { get; } =
    [
        BenchCommand.Definition,
        BitmapCommand.Definition,
        CheckCommand.Definition,
        CommitCommand.Definition,
        CompareCommand.Definition,
        ConvertCommand.Definition,
        CreateCommand.Definition,
        InfoCommand.Definition,
        MapCommand.Definition,
        RebaseCommand.Definition,
        ResizeCommand.Definition,
    ];

    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (args.Count == 0)
        {
            error.WriteLine(Prefix + "Not enough arguments (try 'strata img --help')");
            return 1;
        }

        if (args[0] is "--help" or "-h" or "help")
        {
            output.Write(args.Count > 1 && Find(args[1]) is { } c ? c.Manual : Manual());
            return 0;
        }

        var command = Find(args[0]);
        if (command is null)
        {
            error.WriteLine(Prefix + $"Command not found: {args[0]} (try 'strata img --help')");
            return 1;
        }

        var rest = args.Skip(1).ToArray();
        if (rest.Any(a => a is "--help" or "-h"))
        {
            output.Write(command.Manual);
            return 0;
        }

        var context = new ImgContext(output, error);
        try
        {
            return await command.RunAsync(rest, context);
        }
        catch (CliException e)
        {
            error.WriteLine(Prefix + OneLine(e.Message));
            return e.ExitCode;
        }
        catch (BlockException e)
        {
            error.WriteLine(Prefix + OneLine(e.Message));
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException
            or NotImplementedException or InvalidOperationException or ArgumentException or OperationCanceledException)
        {
            error.WriteLine(Prefix + OneLine(e is NotImplementedException ? "This operation is not implemented yet" : e.Message));
            return 1;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug, not a user error: still one line, never a stack trace.
            error.WriteLine(Prefix + $"internal error ({e.GetType().Name}): " + OneLine(e.Message));
            return 1;
        }
        finally
        {
            await output.FlushAsync();
        }
    }

    /// <summary>Prefixes a command's own failure and keeps it on one line.</summary>
    public static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();

    private static ImgSubcommand? Find(string name) => Commands.FirstOrDefault(c => c.Name == name);

    private static string Manual()
    {
        var text = new StringBuilder();
        text.AppendLine("NAME");
        text.AppendLine("    strata img - create, inspect, check, convert and commit disk images");
        text.AppendLine();
        text.AppendLine("SYNOPSIS");
        text.AppendLine("    strata img COMMAND [OPTIONS] ...");
        text.AppendLine();
        text.AppendLine("DESCRIPTION");
        text.AppendLine("    The offline image tool, spelled like qemu-img: same commands, options, output and exit");
        text.AppendLine($"    codes. Formats: {ImgContext.Drivers.FormatNames}. Sizes take the suffixes k, M, G, T, P, E (powers of 1024).");
        text.AppendLine("    'strata img COMMAND --help' shows the manual of one command.");
        text.AppendLine();
        text.AppendLine("COMMANDS");
        foreach (var c in Commands)
        {
            text.AppendLine("    " + c.Synopsis);
        }

        text.AppendLine();
        text.AppendLine("EXIT STATUS");
        text.AppendLine("    0 on success, 1 on error, unless a command documents other codes (check, compare).");
        text.AppendLine("    Every error is one line on stderr: 'strata img: <message>'.");
        return text.ToString();
    }
}
