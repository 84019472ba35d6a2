namespace Strata.Block;

/// <summary>A block-layer failure with a one-line, user-facing message.</summary>
public sealed class BlockException : IOException
{
    public BlockException(BlockError error, string message)
        : base(message) => Error = error;

    public BlockException(BlockError error, string message, Exception innerException)
        : base(message, innerException) => Error = error;

    public BlockException()
        : this(BlockError.Io, "I/O error")
    {
    }

    public BlockException(string message)
        : this(BlockError.Io, message)
    {
    }

    public BlockException(string message, Exception innerException)
        : this(BlockError.Io, message, innerException)
    {
    }

    public BlockError Error { get; }

    public static BlockException Corrupt(string message) => new(BlockError.Corrupt, message);

    public static BlockException Invalid(string message) => new(BlockError.InvalidArgument, message);

    public static BlockException NotSupported(string message) => new(BlockError.NotSupported, message);

    public static BlockException ReadOnly(string message) => new(BlockError.ReadOnly, message);
}
