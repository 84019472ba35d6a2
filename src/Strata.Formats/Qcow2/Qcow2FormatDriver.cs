using System.Globalization;
using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats.Qcow2;

/// <summary>
/// The qcow2 format (docs/interop/qcow2.txt) on any protocol node: probing by its magic, opening
/// with its backing chain, and the header fields a new image takes.
/// </summary>
public sealed class Qcow2FormatDriver : IFormatDriver
{
    public const string FormatName = "qcow2";

    /// <summary>A signature match outranks raw's "anything".</summary>
    private const int SignatureScore = 100;

    public string Name => FormatName;

    /// <summary>Listed by name; defaults are those of <see cref="Qcow2CreateOptions"/>.</summary>
    public IReadOnlyList<CreateOption> CreateOptions { get; } =
    [
        new(CreateOption.BackingFile, CreateOptionType.String),
        new(CreateOption.BackingFormat, CreateOptionType.String),
        new("cluster_size", CreateOptionType.Size, "65536"),
        new("compat", CreateOptionType.String, "1.1"),
        new("compression_type", CreateOptionType.String, "zlib"),
        new("extended_l2", CreateOptionType.Bool, "off"),
        new("lazy_refcounts", CreateOptionType.Bool, "off"),
        new("preallocation", CreateOptionType.String, "off"),
        new("refcount_bits", CreateOptionType.Number, "16"),
        new(CreateOption.Size, CreateOptionType.Size),
    ];

    public int Probe(ReadOnlySpan<byte> start) => ImageSignatures.Detect(start) == FormatName ? SignatureScore : 0;

    /// <summary>Its metadata needs more of the file than its user asks: a read-write open writes the header (docs/locking.md).</summary>
    public NodePermissions FilePermissions(NodePermissions user, bool readOnly) => user.ForMetadataFile(!readOnly);

    public async ValueTask<IBlockNode> OpenAsync(IBlockNode file, FormatOpenRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(request);
        Qcow2Node image;
        try
        {
            image = request.Repair && !request.ReadOnly
                ? await Qcow2Node.OpenForRepairAsync(file, cancellationToken)
                : await Qcow2Node.OpenAsync(file, request.ReadOnly, cancellationToken);
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }

        try
        {
            // The recorded format is trusted; only an image that records none is probed.
            if (request.OpenBacking is { } openBacking && image.BackingFileName is { } backingName)
            {
                image.BackingEdge.Attach(await openBacking(backingName, image.BackingFormat, cancellationToken), owns: true);
            }

            return image;
        }
        catch
        {
            await image.DisposeAsync();
            throw;
        }
    }

    public FormatCreatePlan PlanCreate(FormatCreateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var q = new Qcow2CreateOptions { Size = request.Size, BackingFile = request.BackingFile, BackingFormat = request.BackingFormat };
        foreach (var (name, value) in request.Options)
        {
            q = name switch
            {
                "cluster_size" => q with { ClusterSize = ParseClusterSize(value) },
                "compat" => q with
                {
                    Compat = value switch
                    {
                        "0.10" or "v2" => "0.10",
                        "1.1" or "v3" => "1.1",
                        _ => throw BlockException.Invalid($"Parameter 'version' does not accept value '{value}'"),
                    },
                },
                "refcount_bits" => q with { RefcountBits = ParseRefcountBits(value) },
                "lazy_refcounts" => q with { LazyRefcounts = ParseSwitch(name, value) },
                "compression_type" => q with
                {
                    CompressionType = value is "zlib" or "zstd" ? value
                        : throw BlockException.Invalid($"Parameter 'compression-type' does not accept value '{value}'"),
                },
                "extended_l2" => ParseSwitch(name, value) ? throw BlockException.NotSupported("Extended L2 tables are not supported") : q,
                "preallocation" => value == "off" ? q : throw BlockException.NotSupported($"Unsupported preallocation mode '{value}'"),
                _ => throw BlockException.Invalid($"Invalid parameter '{name}'"),
            };
        }

        if (q.Compat == "0.10")
        {
            if (q.RefcountBits != 16)
            {
                throw BlockException.Invalid("Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
            }

            if (q.LazyRefcounts)
            {
                throw BlockException.Invalid("Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
            }

            if (q.CompressionType != "zlib")
            {
                throw BlockException.Invalid("Compression type can only be changed with compat=1.1 or above");
            }
        }

        return new Qcow2CreatePlan(q);
    }

    private static int ParseClusterSize(string value) =>
        ImageCreator.TryParseSize(value, out long size) && size >= 512 && size <= 2 * 1024 * 1024 && (size & (size - 1)) == 0
            ? (int)size
            : throw BlockException.Invalid("Cluster size must be a power of two between 512 and 2048k");

    private static int ParseRefcountBits(string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int bits) && bits >= 1 && bits <= 64 && (bits & (bits - 1)) == 0
            ? bits
            : throw BlockException.Invalid("Refcount width must be a power of two and may not exceed 64 bits");

    private static bool ParseSwitch(string name, string value) =>
        QemuOptionList.TryParseSwitch(value, out bool on) ? on : throw BlockException.Invalid($"Parameter '{name}' expects 'on' or 'off'");
}
