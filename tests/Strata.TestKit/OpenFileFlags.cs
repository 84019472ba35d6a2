using System.Globalization;
using System.Runtime.InteropServices;

namespace Strata.TestKit;

/// <summary>
/// The open(2) flags a process really holds a file with, read from /proc (proc(5): /proc/PID/fd/N
/// names the file, the "flags:" line of /proc/PID/fdinfo/N gives the flags in octal). Proof that a
/// flag was set needs no strace, and it works on a daemon running as another process.
/// </summary>
public static class OpenFileFlags
{
    /// <summary>
    /// O_DIRECT as the kernel reports it: octal 040000 on x86_64 (and the other asm-generic ABIs),
    /// 0200000 on arm and arm64.
    /// </summary>
    public static int Direct => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x10000 : 0x4000;

    /// <summary>The flags of every descriptor of process <paramref name="pid"/> (this one when null) that is open on <paramref name="path"/>.</summary>
    public static IReadOnlyList<int> Of(string path, int? pid = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        string proc = pid is { } id ? $"/proc/{id.ToString(CultureInfo.InvariantCulture)}" : "/proc/self";
        var flags = new List<int>();
        foreach (string fd in Directory.GetFiles(Path.Combine(proc, "fd")))
        {
            string? target;
            string[] info;
            try
            {
                target = new FileInfo(fd).LinkTarget;
                info = File.ReadAllLines(Path.Combine(proc, "fdinfo", Path.GetFileName(fd)));
            }
            catch (IOException)
            {
                // Closed while we looked: not one of ours to check.
                continue;
            }

            if (target != full)
            {
                continue;
            }

            string line = info.Single(l => l.StartsWith("flags:", StringComparison.Ordinal));
            flags.Add(Convert.ToInt32(line["flags:".Length..].Trim(), 8));
        }

        return flags;
    }

    /// <summary>Asserts that <paramref name="path"/> is open in the process, and every descriptor on it with O_DIRECT (or every one without).</summary>
    public static void Expect(string path, bool direct, int? pid = null)
    {
        var flags = Of(path, pid);
        if (flags.Count == 0)
        {
            throw new InvalidOperationException($"'{path}' is not open in process {pid?.ToString(CultureInfo.InvariantCulture) ?? "self"}");
        }

        foreach (int f in flags)
        {
            if (((f & Direct) != 0) != direct)
            {
                throw new InvalidOperationException(
                    $"'{path}' is open with flags 0{Convert.ToString(f, 8)}: O_DIRECT (0{Convert.ToString(Direct, 8)}) is {(direct ? "missing" : "set")}");
            }
        }
    }
}
