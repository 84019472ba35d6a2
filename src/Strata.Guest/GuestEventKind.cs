namespace Strata.Guest;

public enum GuestEventKind
{
    /// <summary>The agent answers (after a connect or a reconnect).</summary>
    Connected,

    /// <summary>The agent stopped answering or its connection closed.</summary>
    Lost,

    Frozen,
    Thawed,
}
