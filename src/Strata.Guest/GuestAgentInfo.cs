namespace Strata.Guest;

/// <summary>guest-info's answer (qga/qapi-schema.json, GuestAgentInfo): the agent's version and the commands it has enabled.</summary>
public sealed record GuestAgentInfo(string Version, IReadOnlyList<string> EnabledCommands);
