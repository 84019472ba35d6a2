namespace Strata.Agent;

/// <summary>
/// A command that failed the way the qemu-ga protocol reports it: an error class
/// (<c>GenericError</c>, <c>CommandNotFound</c> …, qapi/error.json) and a one-line description.
/// </summary>
internal sealed class AgentError(string errorClass, string description) : Exception(description)
{
    public string ErrorClass { get; } = errorClass;

    public static AgentError Generic(string description) => new("GenericError", description);
}
