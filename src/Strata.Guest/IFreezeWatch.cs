namespace Strata.Guest;

/// <summary>
/// Something outside the daemon's process that thaws a guest if the daemon dies while the guest is
/// frozen (DESIGN.md rule 8: a frozen guest always thaws). A channel arms it for its socket before it
/// sends a freeze, and disarms it only after the agent acknowledged the thaw.
/// </summary>
public interface IFreezeWatch
{
    /// <summary>From now on, if this process ends, the watch thaws the agent at <paramref name="socketPath"/>. Throws <see cref="IOException"/> when the watch cannot be started.</summary>
    void Arm(string socketPath);

    /// <summary>The agent at <paramref name="socketPath"/> is thawed; nothing to do for it any more.</summary>
    void Disarm(string socketPath);
}
