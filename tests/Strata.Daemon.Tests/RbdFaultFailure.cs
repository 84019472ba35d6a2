using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>One failed attempt of a request in <see cref="RbdFaultLoad"/>: what was sent and how it failed.</summary>
internal sealed record RbdFaultFailure(DiskOp Request, Exception Error)
{
    public override string ToString() => $"{Request}: {Error.GetType().Name}: {Error.Message}";
}
