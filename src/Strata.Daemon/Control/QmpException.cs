namespace Strata.Daemon.Control;

/// <summary>A command failure with its QMP error class (qmp-spec.rst, "Error"): GenericError, DeviceNotFound, CommandNotFound.</summary>
public sealed class QmpException : Exception
{
    public QmpException(string message, string errorClass = "GenericError")
        : base(message) => ErrorClass = errorClass;

    public QmpException()
        : this("error")
    {
    }

    public QmpException(string message, Exception innerException)
        : base(message, innerException) => ErrorClass = "GenericError";

    public string ErrorClass { get; }
}
