using System.CommandLine;
using System.Reflection;
using Strata.Cli.Backup;
using Strata.Cli.Img;
using Strata.Cli.Monitor;
using Strata.Cli.Serve;

namespace Strata.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "serve")
        {
            // Before anything touches Console: the runtime reads SIGINT's disposition then.
            Serve.InterruptSignal.StopIgnoring();
        }

        return Run(args, Console.Out, Console.Error);
    }

    /// <summary>Runs one command line in-process, writing to the given writers; returns the exit status.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);

        // `img` parses its own options, getopt style, to be spelled exactly like qemu-img (negative
        // sizes, bundled flags, "-b ''"), which System.CommandLine's grammar does not allow.
        if (args.Length > 0 && args[0] == "img")
        {
            return ImgTool.RunAsync(args[1..], output, error).GetAwaiter().GetResult();
        }

        var root = new RootCommand("Strata: serve, snapshot, merge and back up virtual-machine disks.");
        var version = typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
        root.Subcommands.Add(ImgCommand.Build());
        root.Subcommands.Add(ServeCommand.Build());
        root.Subcommands.Add(MonitorCommand.Build(output, error));
        root.Subcommands.Add(DemoCommand.Build(output, error));
        root.Subcommands.Add(GuestWatchCommand.Build());
        root.Subcommands.Add(BackupCommand.Build(output, error));
        root.SetAction(_ => output.WriteLine($"strata {version}"));
        return root.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
    }
}
