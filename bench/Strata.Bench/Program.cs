using Strata.Bench.Live;

namespace Strata.Bench;

/// <summary>Entry point of the side-by-side benchmarks; each benchmark is a subcommand.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "img")
        {
            return await ImgBench.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == BitmapIntentBench.Command)
        {
            return await BitmapIntentBench.RunAsync();
        }

        if (args.Length > 0 && LiveBench.IsCommand(args[0]))
        {
            return await LiveBench.RunAsync(args[0], args[1..]);
        }

        Console.Error.WriteLine("usage: dotnet run --project bench/Strata.Bench -c Release -- img [--dir DIR] [--runs N] [--size BYTES] [--quick] [--out FILE]");
        Console.Error.WriteLine($"       dotnet run --project bench/Strata.Bench -c Release -- {LiveBench.Commands} {LiveOptions.Usage}");
        Console.Error.WriteLine($"       dotnet run --project bench/Strata.Bench -c Release -- {BitmapIntentBench.Command}");
        return args.Length == 0 ? 2 : 1;
    }
}
