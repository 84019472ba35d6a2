using Strata.Formats;

namespace Strata.Daemon;

/// <summary>
/// One <c>--guest id=NAME,socket=PATH,drives=ID[+ID…][,mountpoints=PATH[+PATH…]]</c>: a VM's agent,
/// reached at the unix socket where QEMU's chardev for its virtio-serial port listens, the drives the
/// VM writes, and the mount points a freeze names (none: every file system; docs/guest.md).
/// </summary>
public sealed record GuestSpec(string Id, string Socket, IReadOnlyList<string> Drives)
{
    /// <summary>The mount points a freeze names (guest-fsfreeze-freeze-list); empty: all of them.</summary>
    public IReadOnlyList<string> Mountpoints { get; init; } = [];

    /// <summary>Parses the value of <c>--guest</c>; throws <see cref="FormatException"/> with a one-line message.</summary>
    public static GuestSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string? id = null, socket = null;
        List<string>? drives = null;
        List<string> mountpoints = [];
        foreach (string pair in QemuOptionList.Split(text))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new FormatException($"--guest '{text}': expected key=value, got '{pair}'");
            }

            string value = pair[(eq + 1)..];
            switch (pair[..eq])
            {
                case "id":
                    id = value;
                    break;
                case "socket":
                    socket = value;
                    break;
                case "drives":
                    drives = [.. value.Split('+', StringSplitOptions.RemoveEmptyEntries)];
                    break;
                case "mountpoints":
                    mountpoints = [.. value.Split('+', StringSplitOptions.RemoveEmptyEntries)];
                    break;
                default:
                    throw new FormatException($"--guest '{text}': unknown key '{pair[..eq]}' (id, socket, drives, mountpoints)");
            }
        }

        return Create(id, socket, drives, $"--guest '{text}'") with { Mountpoints = mountpoints };
    }

    /// <summary>Checks the parts of a guest however they were given; <paramref name="where"/> starts the message.</summary>
    public static GuestSpec Create(string? id, string? socket, IReadOnlyList<string>? drives, string where)
    {
        if (string.IsNullOrEmpty(id) || id.Any(char.IsControl))
        {
            throw new FormatException($"{where}: id=NAME is required (no control characters)");
        }

        if (string.IsNullOrEmpty(socket) || socket.Any(char.IsControl))
        {
            throw new FormatException($"{where}: socket=PATH is required (the unix socket of the VM's guest agent channel)");
        }

        if (drives is null || drives.Count == 0)
        {
            throw new FormatException($"{where}: drives=ID[+ID...] is required (the drives this guest writes)");
        }

        return new GuestSpec(id, Path.GetFullPath(socket), drives);
    }
}
