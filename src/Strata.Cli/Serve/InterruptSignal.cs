using System.Globalization;
using System.Runtime.InteropServices;

namespace Strata.Cli.Serve;

/// <summary>
/// Lets SIGINT stop <c>strata serve</c> even when the daemon was started with SIGINT ignored, as a
/// shell does for a command a script runs with <c>&amp;</c>: qemu-storage-daemon stops on SIGINT either
/// way, and scripts written for it send SIGINT. The .NET runtime keeps an inherited "ignore" and
/// then never delivers the signal, so the disposition goes back to the default before the runtime
/// first looks at it (its first use of Console, Process or PosixSignalRegistration).
/// </summary>
internal static partial class InterruptSignal
{
    private const int SigInt = 2;
    private const nint SigDfl = 0;

    public static void StopIgnoring()
    {
        if (OperatingSystem.IsLinux() && IsIgnored())
        {
            _ = SetDisposition(SigInt, SigDfl);
        }
    }

    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint SetDisposition(int signal, nint handler);

    /// <summary>The "SigIgn:" mask of /proc/self/status, bit n-1 for signal n.</summary>
    private static bool IsIgnored()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("SigIgn:", StringComparison.Ordinal))
                {
                    return ulong.TryParse(line.AsSpan("SigIgn:".Length).Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong mask)
                        && (mask & (1UL << (SigInt - 1))) != 0;
                }
            }
        }
        catch (IOException)
        {
            // No /proc: leave the disposition as it is.
        }

        return false;
    }
}
