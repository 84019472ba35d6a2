using System.Globalization;
using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats.Qcow2;

/// <summary>A new qcow2 image: its header fields, written by <see cref="Qcow2Node.CreateAsync"/>.</summary>
internal sealed class Qcow2CreatePlan(Qcow2CreateOptions options) : FormatCreatePlan(options.Size, SettingsOf(options))
{
    public Qcow2CreateOptions Options { get; } = options;

    public override ValueTask WriteAsync(IBlockNode file, CancellationToken cancellationToken = default)
        => Qcow2Node.CreateAsync(file, Options, cancellationToken);

    /// <summary>Every field the header gets, in the driver's option order.</summary>
    private static List<KeyValuePair<string, string>> SettingsOf(Qcow2CreateOptions q)
    {
        var settings = new List<KeyValuePair<string, string>>();
        if (q.BackingFile is not null)
        {
            settings.Add(new(CreateOption.BackingFile, q.BackingFile));
            if (q.BackingFormat is not null)
            {
                settings.Add(new(CreateOption.BackingFormat, q.BackingFormat));
            }
        }

        settings.Add(new("cluster_size", Text(q.ClusterSize)));
        settings.Add(new("compat", q.Compat));
        settings.Add(new("compression_type", q.CompressionType));
        settings.Add(new("extended_l2", "off"));
        settings.Add(new("lazy_refcounts", q.LazyRefcounts ? "on" : "off"));
        settings.Add(new("preallocation", "off"));
        settings.Add(new("refcount_bits", Text(q.RefcountBits)));
        settings.Add(new(CreateOption.Size, Text(q.Size)));
        return settings;
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}
