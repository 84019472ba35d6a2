using System.Runtime.InteropServices;

namespace Strata.Guest;

/// <summary>A socket the daemon armed its freeze watch for (<see cref="FreezeWatch"/>): the daemon's connection to it, if any, and when the watch may thaw by itself (a Stopwatch timestamp).</summary>
internal sealed record ArmedSocket(string Path, SafeHandle? Connection, long Deadline);
