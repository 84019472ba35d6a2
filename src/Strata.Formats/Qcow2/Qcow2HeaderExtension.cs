namespace Strata.Formats.Qcow2;

/// <summary>One header extension (qcow2.txt, "Header extensions"): a type, and its data unpadded.</summary>
internal sealed record Qcow2HeaderExtension(uint Type, byte[] Data)
{
    public const uint EndOfExtensions = 0;
    public const uint BackingFormat = 0xe2792aca;
    public const uint FeatureNameTable = 0x6803f857;
    public const uint Bitmaps = 0x23852875;
    public const uint FullDiskEncryption = 0x0537be77;
    public const uint ExternalDataFile = 0x44415441;
}
