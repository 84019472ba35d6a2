using System.CommandLine;
using System.Runtime.InteropServices;
using Strata.Guest;

namespace Strata.Cli.Serve;

/// <summary>
/// <c>strata guest-watch</c>: the freeze watch <c>strata serve</c> starts at its first guest freeze
/// (docs/guest.md, "A freeze always thaws"). It reads the daemon's pipe and, when the pipe closes,
/// thaws every guest the daemon left frozen. It outlives signals meant for the daemon (a Ctrl-C to
/// the terminal reaches both): it ends only when its pipe does.
/// </summary>
public static class GuestWatchCommand
{
    public static Command Build()
    {
        var command = new Command("guest-watch", "Internal: started by 'strata serve'; thaws the guests it left frozen if it dies.") { Hidden = true };
        command.SetAction(_ =>
        {
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Ignore);
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Ignore);
            using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Ignore);
            return new FreezeWatcher(Console.Error).RunAsync(Console.In).GetAwaiter().GetResult();
        });
        return command;

        static void Ignore(PosixSignalContext context) => context.Cancel = true;
    }

    /// <summary>The watch <c>strata serve</c> starts: this same program, as a native executable or under the dotnet host.</summary>
    public static FreezeWatch ForThisProgram()
    {
        string program = Environment.ProcessPath ?? throw new IOException("cannot tell which program to start as the freeze watch");
        return Path.GetFileNameWithoutExtension(program) == "dotnet"
            ? new FreezeWatch(program, [Path.Combine(AppContext.BaseDirectory, "strata.dll"), "guest-watch"])
            : new FreezeWatch(program, ["guest-watch"]);
    }
}
