namespace Strata.Guest;

/// <summary>Why a call to a guest agent failed; each is an ordinary case with its own one-line message.</summary>
public enum GuestAgentErrorKind
{
    /// <summary>Nothing answers on the socket (no VM, no chardev, the VM is restarting).</summary>
    NoAgent,

    /// <summary>The agent did not answer within the call's timeout (hung, or no agent runs in the guest).</summary>
    Timeout,

    /// <summary>The agent sent something the protocol does not allow (garbage, a wrong id, a reply of another shape, a line too long).</summary>
    Protocol,

    /// <summary>The agent answered with an error (qga: {"error": {"class", "desc"}}), e.g. a command it blocks.</summary>
    AgentError,

    /// <summary>The connection closed during the call.</summary>
    Disconnected,
}
