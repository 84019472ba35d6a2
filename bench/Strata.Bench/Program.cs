namespace Strata.Bench;

/// <summary>Entry point of the side-by-side benchmarks; each benchmark is a subcommand.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("usage: dotnet run --project bench/Strata.Bench -c Release -- BENCHMARK [options]");
        return args.Length == 0 ? 2 : 1;
    }
}
