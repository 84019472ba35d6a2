namespace Strata.Guest;

/// <summary>Bounds of one agent connection: every wait has a timeout and every line a length limit.</summary>
public sealed record GuestAgentOptions
{
    /// <summary>How long connecting to the socket may take.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a call (the sync included) may wait for its reply, except the freeze.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long guest-fsfreeze-freeze may take: the agent syncs every file system before it
    /// freezes it (FIFREEZE), which under a busy writer takes seconds.
    /// </summary>
    public TimeSpan FreezeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The longest line taken from the agent; guest-info, the longest reply used, is a few KiB.</summary>
    public int MaxLineBytes { get; init; } = 64 * 1024;
}
