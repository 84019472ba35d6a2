namespace Strata.Formats.Qcow2;

/// <summary>Feature bits of the version 3 header (qcow2.txt, "Header", bytes 72-95).</summary>
internal static class Qcow2Features
{
    public const ulong IncompatibleDirty = 1UL << 0;
    public const ulong IncompatibleCorrupt = 1UL << 1;
    public const ulong IncompatibleExternalDataFile = 1UL << 2;
    public const ulong IncompatibleCompressionType = 1UL << 3;
    public const ulong IncompatibleExtendedL2 = 1UL << 4;

    /// <summary>The incompatible bits this driver knows and honours.</summary>
    public const ulong IncompatibleSupported = IncompatibleDirty | IncompatibleCorrupt | IncompatibleCompressionType;

    public const ulong CompatibleLazyRefcounts = 1UL << 0;

    public const ulong AutoclearBitmaps = 1UL << 0;
    public const ulong AutoclearRawExternalData = 1UL << 1;

    public const byte TypeIncompatible = 0;
    public const byte TypeCompatible = 1;
    public const byte TypeAutoclear = 2;

    /// <summary>The feature-name table QEMU writes into every version 3 header, in its order.</summary>
    public static IReadOnlyList<(byte Type, byte Bit, string Name)> KnownNames { get; } =
    [
        (TypeIncompatible, 0, "dirty bit"),
        (TypeIncompatible, 1, "corrupt bit"),
        (TypeIncompatible, 2, "external data file"),
        (TypeIncompatible, 3, "compression type"),
        (TypeIncompatible, 4, "extended L2 entries"),
        (TypeCompatible, 0, "lazy refcounts"),
        (TypeAutoclear, 0, "bitmaps"),
        (TypeAutoclear, 1, "raw external data"),
    ];
}
