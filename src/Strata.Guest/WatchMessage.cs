using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;

namespace Strata.Guest;

/// <summary>
/// One message from the daemon to its freeze watch (<see cref="FreezeWatch"/> writes them):
/// <c>arm MS fd|- PATH</c>, <c>lease MS PATH</c>, <c>disarm PATH</c>. A deadline in MS is counted
/// from the moment the watch reads the line.
/// </summary>
internal sealed record WatchMessage(string Kind, string Path, long? DeadlineOrNull, SafeSocketHandle? Connection)
{
    /// <summary>
    /// Parses a line; an <c>arm ... fd</c> takes the oldest descriptor received and not yet taken,
    /// which is its own: a descriptor arrives with the first byte of its message, and messages stay
    /// in order. Null for a line the watch does not know (skipped, as a newer daemon might send one).
    /// </summary>
    public static WatchMessage? Parse(string line, List<SafeSocketHandle> descriptors)
    {
        string[] words = line.Split(' ', 2);
        switch (words[0])
        {
            case "arm" when words.Length == 2 && words[1].Split(' ', 3) is [var ms, var fd and ("fd" or "-"), var path] && Deadline(ms) is { } deadline:
                SafeSocketHandle? connection = null;
                if (fd == "fd" && descriptors.Count > 0)
                {
                    connection = descriptors[0];
                    descriptors.RemoveAt(0);
                }

                return new WatchMessage("arm", path, deadline, connection);
            case "lease" when words.Length == 2 && words[1].Split(' ', 2) is [var ms, var path] && Deadline(ms) is { } deadline:
                return new WatchMessage("lease", path, deadline, null);
            case "disarm" when words.Length == 2:
                return new WatchMessage("disarm", words[1], null, null);
            default:
                return null;
        }
    }

    private static long? Deadline(string milliseconds) =>
        long.TryParse(milliseconds, NumberStyles.None, CultureInfo.InvariantCulture, out long ms) && ms <= 366L * 24 * 3600 * 1000
            ? Stopwatch.GetTimestamp() + (long)(ms / 1000.0 * Stopwatch.Frequency)
            : null;
}
