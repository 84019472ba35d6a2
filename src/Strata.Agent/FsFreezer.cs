using System.Runtime.InteropServices;
using System.Text;

namespace Strata.Agent;

/// <summary>
/// Freezes real file systems: the ext4 and xfs mounts of /proc/self/mounts, with the FIFREEZE and
/// FITHAW ioctls on the mount point (what fsfreeze(8) and qemu-ga do). A device mounted twice is
/// frozen once: the kernel refuses a second FIFREEZE of the same super block with EBUSY.
/// </summary>
internal sealed class FsFreezer(string mountsFile = "/proc/self/mounts") : IFreezer
{
    private static readonly string[] FreezableTypes = ["ext4", "ext3", "ext2", "xfs", "btrfs"];

    public IReadOnlyList<string> FreezableMounts()
    {
        var seenDevices = new HashSet<string>(StringComparer.Ordinal);
        var mounts = new List<string>();
        foreach (string line in File.ReadAllLines(mountsFile))
        {
            // proc(5): device mountpoint type options dump pass; spaces in names are octal escapes.
            string[] fields = line.Split(' ');
            if (fields.Length >= 3 && FreezableTypes.Contains(fields[2]) && seenDevices.Add(fields[0]))
            {
                mounts.Add(Unescape(fields[1]));
            }
        }

        return mounts;
    }

    public void Freeze(string mountPoint) => Control(mountPoint, NativeMethods.FiFreeze, "freeze");

    public void Thaw(string mountPoint) => Control(mountPoint, NativeMethods.FiThaw, "thaw");

    private static void Control(string mountPoint, uint request, string verb)
    {
        int fd = NativeMethods.Open(mountPoint, NativeMethods.ORdOnly | NativeMethods.ODirectory | NativeMethods.OCloexec);
        if (fd < 0)
        {
            throw AgentError.Generic($"cannot open {mountPoint} to {verb} it: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        try
        {
            if (NativeMethods.Ioctl(fd, request, 0) < 0)
            {
                throw AgentError.Generic($"cannot {verb} {mountPoint}: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }
        finally
        {
            NativeMethods.Close(fd);
        }
    }

    /// <summary>Undoes the \ooo escapes the kernel writes for space, tab, newline and backslash.</summary>
    internal static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var text = new StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                text.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s.AsSpan(at, 3).IndexOfAnyExceptInRange('0', '7') < 0;
}
