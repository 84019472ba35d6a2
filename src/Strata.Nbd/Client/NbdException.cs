using Strata.Nbd.Protocol;

namespace Strata.Nbd.Client;

/// <summary>A request or option the server refused, with its NBD error and the server's message when it sent one.</summary>
public sealed class NbdException : IOException
{
    public NbdException(NbdErrno error, string message)
        : base(message) => Error = error;

    public NbdException()
        : this(NbdErrno.IoError, "NBD error")
    {
    }

    public NbdException(string message)
        : this(NbdErrno.IoError, message)
    {
    }

    public NbdException(string message, Exception innerException)
        : base(message, innerException) => Error = NbdErrno.IoError;

    public NbdErrno Error { get; }

    /// <summary>The option reply, when an option (not a request) was refused.</summary>
    public NbdOptionReply? OptionReply { get; init; }
}
