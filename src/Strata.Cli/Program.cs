using System.CommandLine;
using System.Reflection;

namespace Strata.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Strata: serve, snapshot, merge and back up virtual-machine disks.");
        var version = typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
        root.SetAction(_ => Console.WriteLine($"strata {version}"));
        return root.Parse(args).Invoke();
    }
}
