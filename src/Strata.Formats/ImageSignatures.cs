using System.Buffers.Binary;

namespace Strata.Formats;

/// <summary>
/// What the first sector of a file says it is, the way QEMU's format probes (the drivers'
/// <c>bdrv_probe</c> callbacks, fed the first 512 bytes) would see it: every format QEMU
/// recognises from content alone, not only the ones Strata opens.
/// </summary>
/// <remarks>
/// Two uses. Probing an image whose format was not given: Strata opens qcow2 and raw, and refuses a
/// file that looks like any other format rather than serve it as raw. Guarding a probed raw image:
/// a guest must never make its first sector look like a format, or the next open with probing (by
/// Strata or by QEMU) would read the guest's bytes as metadata, backing file name included
/// (<see cref="Raw.ProbedRawNode"/>). Recognising more than QEMU does is the safe side: a guest's
/// first sector is a partition table or a boot sector, never one of these headers.
/// </remarks>
public static class ImageSignatures
{
    /// <summary>The bytes probing looks at (QEMU's BLOCK_PROBE_BUF_SIZE).</summary>
    public const int ProbeLength = Block.Drivers.DriverRegistry.ProbeLength;

    // Magic strings at offset 0 (each driver's header definition in qemu/block/*.c).
    private static readonly (string Format, byte[] Magic)[] Magics =
    [
        ("qcow2", [(byte)'Q', (byte)'F', (byte)'I', 0xfb]), // qcow and qcow2: the version decides which
        ("qed", "QED\0"u8.ToArray()),
        ("vmdk", "KDMV"u8.ToArray()), // VMDK4 sparse extent
        ("vmdk", "COWD"u8.ToArray()), // VMDK3
        ("vhdx", "vhdxfile"u8.ToArray()),
        ("vpc", "conectix"u8.ToArray()),
        ("luks", [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xba, 0xbe]),
        ("parallels", "WithoutFreeSpace"u8.ToArray()),
        ("parallels", "WithouFreSpacExt"u8.ToArray()),
        ("bochs", "Bochs Virtual HD Image"u8.ToArray()),
        ("dirty_bitmap", DirtyBitmaps.DirtyBitmapHeader.Magic.ToArray()), // Strata's own (docs/formats/dirty-bitmap.md)
        ("cloop", "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"u8.ToArray()),
    ];

    /// <summary>VDI's signature, little-endian at byte 64 (block/vdi.c, VDI_SIGNATURE).</summary>
    private const uint VdiSignature = 0xbeda107f;

    /// <summary>
    /// The format the start of a file looks like, or null when it looks like nothing (raw). Reads at
    /// most <see cref="ProbeLength"/> bytes of <paramref name="start"/>; shorter input is what a short
    /// file has.
    /// </summary>
    public static string? Detect(ReadOnlySpan<byte> start)
    {
        if (start.Length > ProbeLength)
        {
            start = start[..ProbeLength];
        }

        foreach (var (format, magic) in Magics)
        {
            if (start.StartsWith(magic))
            {
                return format;
            }
        }

        if (start.Length >= 68 && BinaryPrimitives.ReadUInt32LittleEndian(start[64..]) == VdiSignature)
        {
            return "vdi";
        }

        return IsVmdkDescriptor(start) ? "vmdk" : null;
    }

    /// <summary>
    /// A text VMDK descriptor (block/vmdk.c vmdk_probe): comment lines and blank lines, then a line
    /// starting with "version=".
    /// </summary>
    private static bool IsVmdkDescriptor(ReadOnlySpan<byte> start)
    {
        var version = "version="u8;
        int at = 0;
        while (at < start.Length)
        {
            var rest = start[at..];
            int newline = rest.IndexOf((byte)'\n');
            var line = newline < 0 ? rest : rest[..newline];
            if (line.StartsWith(version))
            {
                return true;
            }

            bool comment = line.Length > 0 && line[0] == (byte)'#';
            bool blank = line.Trim((byte)' ').TrimEnd((byte)'\r').IsEmpty;
            if (!comment && !blank)
            {
                return false;
            }

            if (newline < 0)
            {
                return false;
            }

            at += newline + 1;
        }

        return false;
    }
}
