using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Cli.Tests;

/// <summary>A creation plan that only carries settings, for the texts that describe one.</summary>
internal sealed class SettingsOnlyPlan(long size, IReadOnlyList<KeyValuePair<string, string>> settings) : FormatCreatePlan(size, settings)
{
    public override ValueTask WriteAsync(IBlockNode file, CancellationToken cancellationToken = default) => throw new NotSupportedException();
}
