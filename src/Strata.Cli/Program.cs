using System.CommandLine;
using System.Reflection;
using Strata.Cli.Img;
using Strata.Cli.Serve;

namespace Strata.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Strata: serve, snapshot, merge and back up virtual-machine disks.");
        var version = typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
        root.Subcommands.Add(ImgCommand.Build());
        root.Subcommands.Add(ServeCommand.Build());
        root.Subcommands.Add(DemoCommand.Build());
        root.SetAction(_ => Console.WriteLine($"strata {version}"));
        return root.Parse(args).Invoke();
    }
}
