namespace Strata.Fuzz;

/// <summary>An invariant a target checks was broken: reported to afl as a crash, like any escaping exception.</summary>
internal sealed class FuzzFailure : Exception
{
    public FuzzFailure()
    {
    }

    public FuzzFailure(string message)
        : base(message)
    {
    }

    public FuzzFailure(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
