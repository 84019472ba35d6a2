using System.CommandLine;
using Strata.Daemon;
using Strata.Daemon.Control;

namespace Strata.Cli.Monitor;

/// <summary>`strata monitor [SOCKET]`: the (strata) console on the daemon's control socket.</summary>
public static class MonitorCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var socket = new Argument<string?>("SOCKET")
        {
            Description = "the daemon's control socket (default: qmp.sock in the runtime folder, as strata serve uses)",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("monitor", """
            The (strata) console. Commands: change -l DEVICE file=PATH (live snapshot), merge_disk PATH
            (live merge), info block, info jobs, stop, cont, quit, help, or any QMP command as JSON.
            Without a terminal it reads one command per line from standard input and exits 1 at the
            first command that fails, so scripts can pipe to it.
            Exit status: 0 all commands succeeded, 1 a command failed or the socket could not be reached.
            """)
        {
            socket,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            string path = result.GetValue(socket) ?? Path.Combine(SocketDefaults.Directory(), SocketDefaults.QmpSocketName);
            return await RunAsync(path, Console.In, output, error, !Console.IsInputRedirected, cancellationToken);
        });
        return command;
    }

    public static async Task<int> RunAsync(string socketPath, TextReader input, TextWriter output, TextWriter error, bool interactive, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        QmpClient qmp;
        try
        {
            qmp = await QmpClient.ConnectAsync(socketPath, cancellationToken);
        }
        catch (IOException e)
        {
            error.WriteLine($"strata monitor: {e.Message} (is 'strata serve' running?)");
            return 1;
        }

        await using (qmp)
        {
            var console = new MonitorConsole(qmp, output, error, interactive);
            bool quit = false;
            var editor = interactive ? new LineEditor() : null;
            if (interactive)
            {
                output.WriteLine("Strata monitor - type 'help' for more information");
            }

            while (!quit && !cancellationToken.IsCancellationRequested)
            {
                string? line = editor is not null ? editor.ReadLine("(strata) ") : await input.ReadLineAsync(cancellationToken);
                if (line is null)
                {
                    break;
                }

                bool ok;
                try
                {
                    ok = await console.RunLineAsync(line, () => quit = true);
                }
                catch (IOException e)
                {
                    error.WriteLine($"strata monitor: the daemon went away: {e.Message}");
                    return 1;
                }

                if (!ok && !interactive)
                {
                    return 1;
                }
            }
        }

        return 0;
    }
}
