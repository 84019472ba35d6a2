namespace Strata.Guest;

/// <summary>A failed guest-agent call, with a one-line message that names the guest's socket and the command.</summary>
public sealed class GuestAgentException : Exception
{
    public GuestAgentException(GuestAgentErrorKind kind, string message)
        : base(message) => Kind = kind;

    public GuestAgentException()
        : this(GuestAgentErrorKind.Protocol, "guest agent error")
    {
    }

    public GuestAgentException(string message)
        : this(GuestAgentErrorKind.Protocol, message)
    {
    }

    public GuestAgentException(string message, Exception innerException)
        : base(message, innerException) => Kind = GuestAgentErrorKind.Protocol;

    public GuestAgentErrorKind Kind { get; }

    /// <summary>The agent's error class when <see cref="Kind"/> is <see cref="GuestAgentErrorKind.AgentError"/> (e.g. CommandNotFound).</summary>
    public string? AgentErrorClass { get; init; }
}
