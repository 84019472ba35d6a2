namespace Strata.Agent;

/// <summary>
/// What freezing needs from the system, so the protocol and the lease can be tested without root.
/// <see cref="FreezableMounts"/> lists mount points in mount order; callers freeze in reverse order
/// (a file system mounted inside another freezes first) and thaw in mount order. Both calls throw
/// <see cref="AgentError"/> with the mount point and the errno text when the kernel refuses.
/// </summary>
internal interface IFreezer
{
    IReadOnlyList<string> FreezableMounts();

    void Freeze(string mountPoint);

    void Thaw(string mountPoint);
}
