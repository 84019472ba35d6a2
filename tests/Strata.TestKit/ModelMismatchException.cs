namespace Strata.TestKit;

/// <summary>A node read back something its <see cref="DiskModel"/> does not allow.</summary>
public sealed class ModelMismatchException : Exception
{
    public ModelMismatchException()
    {
    }

    public ModelMismatchException(string message)
        : base(message)
    {
    }

    public ModelMismatchException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
