namespace Strata.TestKit;

/// <summary>How a <see cref="FakeGuestAgent"/> misbehaves.</summary>
public enum FakeAgentMode
{
    /// <summary>Speaks the protocol as qemu-ga does.</summary>
    Normal,

    /// <summary>Reads everything, answers nothing (a hung agent, or a VM without one).</summary>
    Hang,

    /// <summary>Freezes but never answers the freeze (then answers everything else).</summary>
    HangOnFreeze,

    /// <summary>Answers the sync, then answers every command with bytes that are not JSON.</summary>
    Garbage,

    /// <summary>Answers syncs rightly and every command with another "id".</summary>
    WrongId,

    /// <summary>Before each sync reply sends stale replies, a stale 0xFF and a stale sync reply included.</summary>
    StaleReplies,

    /// <summary>Answers each command with the reply of another (a count to a ping, {} to a freeze).</summary>
    ReplyToOther,

    /// <summary>Says it froze file systems but stays thawed: its status says thawed.</summary>
    LieAboutFreeze,

    /// <summary>Closes the connection when it receives a freeze, freezing nothing.</summary>
    DropOnFreeze,

    /// <summary>Answers guest-info with a line longer than any client should take.</summary>
    LongLine,

    /// <summary>Refuses the freeze commands as a qemu-ga started with -b does.</summary>
    RefuseFreeze,

    /// <summary>Fails the freeze with an error, as qemu-ga does when FIFREEZE fails, but leaves file systems frozen (an agent that does not undo its half-done freeze).</summary>
    FailFreezeLeavingFrozen,
}
