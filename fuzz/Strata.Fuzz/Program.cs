using SharpFuzz;

namespace Strata.Fuzz;

/// <summary>
/// The fuzz driver. Under afl-fuzz (fuzz/run.sh) it runs one target on each input afl gives it; by
/// hand it replays files through a target and prints each failure with its stack; and it records the
/// bytes real NBD clients send, for the seed corpus (fuzz/seeds.sh).
/// </summary>
internal static class Program
{
    private const int ExitFailed = 1;
    private const int ExitUsage = 2;
    private const int ExitHang = 3;

    /// <summary>afl's coverage map: 64 KiB.</summary>
    private const int AflMapSize = 1 << 16;

    /// <summary>A folder of inputs (run.sh gives the seed corpus) to run before fuzzing; see <see cref="WarmUp"/>.</summary>
    private const string WarmUpVariable = "STRATA_FUZZ_WARM_UP";

    private const string Usage = """
        usage: Strata.Fuzz TARGET                run TARGET on the input on stdin (as afl-fuzz does)
               Strata.Fuzz TARGET [--brief] PATH...
                                                 replay files (or every file of folders); print each failure
                                                 with its signature and stack (--brief: signature only)
               Strata.Fuzz record-nbd SOCKET FILE
                                                 serve the nbd target's exports on unix SOCKET to one client
                                                 and write the bytes it sends to FILE
        targets: qcow2, qcow2-read (the read-only pass of qcow2 alone), nbd, qmp
        """;

    public static int Main(string[] args)
    {
        if (args is ["record-nbd", var socket, var file])
        {
            return NbdRecorder.RecordAsync(socket, file).GetAwaiter().GetResult();
        }

        if (args.Length == 0 || FuzzTargets.Find(args[0]) is not { } target)
        {
            Console.Error.WriteLine(Usage);
            return ExitUsage;
        }

        if (args.Length == 1)
        {
            return RunUnderAfl(target);
        }

        bool brief = args[1] == "--brief";
        return Replay(target, args[(brief ? 2 : 1)..], brief);
    }

    /// <summary>
    /// The out-of-process fork server survives what in-process fuzzing cannot: an exception on
    /// another thread (the NBD connection's) ends the process, and a hang leaves a thread spinning.
    /// Not under afl, it runs the input on stdin once.
    /// </summary>
    private static int RunUnderAfl(IFuzzTarget target)
    {
        if (Environment.GetEnvironmentVariable(WarmUpVariable) is { } folder && Directory.Exists(folder))
        {
            WarmUp(target, folder);
        }

        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var input = new MemoryStream();
            stream.CopyTo(input);
            try
            {
                FuzzRun.RunAsync(target, input.ToArray()).GetAwaiter().GetResult();
            }
            catch (FuzzHang e) when (!e.Unwound)
            {
                // The hung work keeps its thread: this process ends, afl counts the input as a crash,
                // and the fork server starts a fresh process for the next one.
                Console.Error.WriteLine(e.Message);
                Environment.Exit(ExitHang);
            }
        });
        return 0;
    }

    /// <summary>
    /// Runs the seeds once, untimed and unreported, so that the first input afl times in a fresh
    /// process (the fork server starts one after every hang) does not pay for compiling the code it
    /// reaches: on a busy host that alone could cost the half second of processor time that makes a hang.
    /// </summary>
    /// <remarks>
    /// Instrumented code counts its branches in SharpFuzz's trace map, which only exists once the fork
    /// server has attached afl's shared memory; until then it is pointed at a scratch map of afl's size.
    /// </remarks>
    private static unsafe void WarmUp(IFuzzTarget target, string folder)
    {
        SharpFuzz.Common.Trace.SharedMem = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(AflMapSize);
        foreach (string file in Directory.GetFiles(folder))
        {
            try
            {
                FuzzRun.RunAsync(target, File.ReadAllBytes(file)).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is not FuzzHang { Unwound: false })
            {
                // A seed that fails is the replay tests' business; here it has compiled what it reached.
            }
        }
    }

    /// <summary>
    /// One line per input: "ok", "FAIL" or "HANG", then the path; a failure's next line is its
    /// signature (see <see cref="FailureSignature"/>), then, unless brief, its stack. The tests read these lines.
    /// </summary>
    private static int Replay(IFuzzTarget target, string[] paths, bool brief)
    {
        var files = paths.SelectMany(p => Directory.Exists(p) ? Directory.GetFiles(p).Order(StringComparer.Ordinal) : (IEnumerable<string>)[p])
            .Where(f => !Path.GetFileName(f).StartsWith('.') && Path.GetFileName(f) != "README.txt")
            .ToList();
        var distinct = new Dictionary<string, (string First, int Count)>();
        foreach (string file in files)
        {
            try
            {
                FuzzRun.RunAsync(target, File.ReadAllBytes(file)).GetAwaiter().GetResult();
                Console.WriteLine($"ok    {file}");
            }
            catch (FuzzHang e) when (!e.Unwound)
            {
                Console.WriteLine($"HANG  {file}");
                Console.WriteLine($"      signature: {FailureSignature.Of(e)}");
                if (!brief)
                {
                    Console.WriteLine(e.Message);
                    Console.WriteLine(string.Join("\n", HangStacks.Read()));
                }

                Console.WriteLine("(the hung run still holds a thread: the files after this one were not replayed)");
                return ExitHang;
            }
            catch (Exception e)
            {
                string signature = FailureSignature.Of(e);
                Console.WriteLine($"FAIL  {file}");
                Console.WriteLine($"      signature: {signature}");
                if (!brief)
                {
                    Console.WriteLine(e.ToString());
                }

                distinct[signature] = distinct.TryGetValue(signature, out var seen) ? (seen.First, seen.Count + 1) : (file, 1);
            }
        }

        int failed = distinct.Values.Sum(d => d.Count);
        Console.WriteLine($"{target.Name}: {files.Count - failed} of {files.Count} inputs passed");
        foreach (var (signature, (first, count)) in distinct)
        {
            Console.WriteLine($"  {count,5} x {signature}");
            Console.WriteLine($"          first: {first}");
        }

        return failed == 0 ? 0 : ExitFailed;
    }
}
