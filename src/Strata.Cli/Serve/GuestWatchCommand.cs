using System.CommandLine;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Strata.Guest;

namespace Strata.Cli.Serve;

/// <summary>
/// <c>strata guest-watch</c>: the freeze watch <c>strata serve</c> starts at its first guest freeze
/// (docs/guest.md, "A freeze always thaws"). It reads the daemon's link (a socket pair) and thaws
/// a guest the daemon left frozen past its lease, or every guest still frozen when the link closes.
/// It outlives signals meant for the daemon (a Ctrl-C to the terminal reaches both): it ends only
/// when its link does.
/// </summary>
public static class GuestWatchCommand
{
    public static Command Build()
    {
        var fd = new Option<int>("--fd") { Description = "the inherited end of the daemon's link", Required = true };
        var command = new Command("guest-watch", "Internal: started by 'strata serve'; thaws the guests it leaves frozen if it dies or hangs.") { Hidden = true };
        command.Options.Add(fd);
        command.SetAction(result =>
        {
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Ignore);
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Ignore);
            using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Ignore);
            int number = result.GetValue(fd);
            if (number < 3)
            {
                Console.Error.WriteLine("strata guest-watch: --fd must name an inherited descriptor (3 or more)");
                return 2;
            }

            using var link = new SafeSocketHandle(number, ownsHandle: true);
            return new FreezeWatcher(Console.Error).RunAsync(link).GetAwaiter().GetResult();
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
