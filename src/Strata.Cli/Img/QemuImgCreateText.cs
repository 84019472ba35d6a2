using System.Text;
using Strata.Block.Drivers;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Cli.Img;

/// <summary>
/// qemu-img create's words: the <c>-o help</c> table and the "Formatting …" line. The formats give
/// their options' names, types and values; how qemu-img describes and orders them is this edge's
/// business. A format qemu-img does not know is shown with its own names, in its own order.
/// </summary>
public static class QemuImgCreateText
{
    /// <summary>qemu-img 7.2's description of each option, by name.</summary>
    private static readonly Dictionary<string, string> Descriptions = new(StringComparer.Ordinal)
    {
        [CreateOption.BackingFile] = "File name of a base image",
        [CreateOption.BackingFormat] = "Image format of the base image",
        ["cluster_size"] = "qcow2 cluster size",
        ["compat"] = "Compatibility level (v2 [0.10] or v3 [1.1])",
        ["compression_type"] = "Compression method used for image cluster compression",
        ["extended_l2"] = "Extended L2 tables (only off is supported)",
        ["lazy_refcounts"] = "Postpone refcount updates",
        ["preallocation"] = "Preallocation mode (only off is supported)",
        ["refcount_bits"] = "Width of a reference count entry in bits",
        [CreateOption.Size] = "Virtual disk size",
    };

    /// <summary>Descriptions of options that mean something else in a format qemu-img does not know.</summary>
    private static readonly Dictionary<(string Format, string Option), string> OwnDescriptions = new()
    {
        [(DirtyBitmapFormatDriver.FormatName, DirtyBitmapFormatDriver.ClusterSizeOption)] = "Bytes of disk per bit (granularity, 512 to 64M)",
        [(DirtyBitmapFormatDriver.FormatName, CreateOption.Size)] = "Size of the disk the bitmap tracks",
    };

    /// <summary>
    /// The order qemu-img 7.2 prints a new image's settings in after "Formatting", per format; a name
    /// ending in '?' is printed only when it was given.
    /// </summary>
    private static readonly Dictionary<string, string[]> FormattingOrder = new(StringComparer.Ordinal)
    {
        [RawFormatDriver.FormatName] = [CreateOption.Size],
        [Qcow2FormatDriver.FormatName] =
        [
            "cluster_size", "extended_l2", "compression_type", CreateOption.Size, "compat?", CreateOption.BackingFile,
            CreateOption.BackingFormat, "lazy_refcounts", "refcount_bits",
        ],
    };

    /// <summary>What <c>create -f FORMAT -o help</c> prints.</summary>
    public static string OptionHelp(IFormatDriver driver)
    {
        ArgumentNullException.ThrowIfNull(driver);
        var text = new StringBuilder(driver.Name == RawFormatDriver.FormatName ? "Supported raw options:\n" : "Supported options:\n");
        foreach (var option in driver.CreateOptions)
        {
            string description = OwnDescriptions.GetValueOrDefault((driver.Name, option.Name)) ?? Descriptions.GetValueOrDefault(option.Name, "");
            text.Append($"  {$"{option.Name}=<{TypeName(option.Type)}>",-22} - {description}\n");
        }

        return text.ToString();
    }

    /// <summary>The line qemu-img prints before it writes an image: "Formatting 'FILE', fmt=… size=…".</summary>
    public static string FormattingLine(string file, ImageCreatePlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var settings = plan.Creation.Settings.ToDictionary(s => s.Key, s => s.Value, StringComparer.Ordinal);
        var text = new StringBuilder($"Formatting '{file}', fmt={plan.Format}");
        var order = FormattingOrder.TryGetValue(plan.Format, out var known) ? known : plan.Creation.Settings.Select(s => s.Key);
        foreach (string entry in order)
        {
            bool onlyGiven = entry.EndsWith('?');
            string name = onlyGiven ? entry[..^1] : entry;
            if (settings.TryGetValue(name, out string? value) && (!onlyGiven || plan.GivenOptions.Contains(name)))
            {
                text.Append(' ').Append(name).Append('=').Append(value);
            }
        }

        return text.ToString();
    }

    /// <summary>qemu's QemuOptType names, as <c>-o help</c> shows them.</summary>
    private static string TypeName(CreateOptionType type) => type switch
    {
        CreateOptionType.Size => "size",
        CreateOptionType.Number => "num",
        CreateOptionType.Bool => "bool (on/off)",
        _ => "str",
    };
}
