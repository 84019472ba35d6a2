using Microsoft.Win32.SafeHandles;

namespace Strata.Formats.Raw;

/// <summary>
/// Finds who holds a lock on a byte of a file, for the lock error: F_OFD_GETLK reports no pid for an
/// open file description lock (l_pid is -1), nor does /proc/locks, but /proc/PID/fdinfo/FD lists the
/// locks of each open file ("lock: 1: OFDLCK ADVISORY READ -1 MAJ:MIN:INODE START END"). Best effort:
/// processes of other users are not readable, and the scan is bounded.
/// </summary>
internal static class LockHolder
{
    private const int MaxFilesScanned = 100_000;

    /// <summary>"qemu-storage-daemon, pid 4242", or null when it cannot be told.</summary>
    public static string? Describe(SafeFileHandle handle, long offset)
    {
        string self = ((int)handle.DangerousGetHandle()).ToString(System.Globalization.CultureInfo.InvariantCulture);
        // The file's "MAJ:MIN:INODE" as the kernel writes it, read from a lock this open file holds
        // (it holds some: locks are taken before they are tested).
        string? file = Locks(Read($"/proc/self/fdinfo/{self}")).Select(l => l.File).FirstOrDefault();
        if (file is null)
        {
            return null;
        }

        int scanned = 0;
        foreach (string process in Entries(Directory.EnumerateDirectories, "/proc"))
        {
            if (!int.TryParse(Path.GetFileName(process), out int pid))
            {
                continue;
            }

            foreach (string info in Entries(Directory.EnumerateFiles, Path.Combine(process, "fdinfo")))
            {
                if (++scanned > MaxFilesScanned)
                {
                    return null;
                }

                if (pid == Environment.ProcessId && Path.GetFileName(info) == self)
                {
                    continue;
                }

                if (Locks(Read(info)).Any(l => l.File == file && l.Start <= offset && offset <= l.End))
                {
                    return pid == Environment.ProcessId ? $"this process, pid {pid}" : $"{Name(process)}, pid {pid}";
                }
            }
        }

        return null;
    }

    /// <summary>The program's file name (argv[0]); the command name, cut at 15 characters, when that is not readable.</summary>
    private static string Name(string process)
    {
        string program = string.Concat(Read(Path.Combine(process, "cmdline"))).Split('\0')[0];
        return program.Length > 0 ? Path.GetFileName(program) : Read(Path.Combine(process, "comm")).FirstOrDefault() ?? "?";
    }

    private static IEnumerable<(string File, long Start, long End)> Locks(IEnumerable<string> fdinfo)
    {
        foreach (string line in fdinfo)
        {
            // Waiters ("->") hold nothing yet.
            string[] fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 9 && fields[0] == "lock:" && fields[2] == "OFDLCK" && !line.Contains("->", StringComparison.Ordinal)
                && long.TryParse(fields[7], out long start))
            {
                yield return (fields[6], start, long.TryParse(fields[8], out long end) ? end : long.MaxValue);
            }
        }
    }

    /// <summary>A /proc file's lines; none when it is gone (the process ended) or not ours to read.</summary>
    private static string[] Read(string path)
    {
        try
        {
            return File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>A /proc folder's entries, read at once; none when it is gone or not ours to read.</summary>
    private static List<string> Entries(Func<string, IEnumerable<string>> list, string folder)
    {
        try
        {
            return [.. list(folder)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
