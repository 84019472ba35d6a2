using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Server.MetaContexts;

/// <summary>
/// "qemu:dirty-bitmap:NAME" (qemu docs/interop/nbd.rst): <see cref="NbdWire.StateDirty"/> where the
/// bitmap marks a granule, 0 elsewhere, in the bitmap's own granules, so a backup client copies
/// only what changed (<c>nbdinfo --map=qemu:dirty-bitmap:NAME</c>, qemu-img's x-dirty-bitmap).
/// </summary>
/// <remarks>
/// The bits are read as they are at each request, without stopping the guest: a granule marked
/// while a reply is built may or may not be in it, which is what a live bitmap means. A connection
/// that chose the context keeps answering from the same bits if the bitmap is later taken off
/// the drive. The bitmap covers the export: its disk size is the export's.
/// </remarks>
public sealed class DirtyBitmapContext : INbdMetaContext
{
    private readonly DirtyBitmap _bits;

    public DirtyBitmapContext(string bitmapName, DirtyBitmap bits)
    {
        ArgumentException.ThrowIfNullOrEmpty(bitmapName);
        ArgumentNullException.ThrowIfNull(bits);
        Name = NameOf(bitmapName);
        _bits = bits;
    }

    public string Name { get; }

    /// <summary>The bits this context answers from.</summary>
    public DirtyBitmap Bits => _bits;

    /// <summary>The context's name for the bitmap <paramref name="bitmapName"/>.</summary>
    public static string NameOf(string bitmapName) => NbdWire.QemuDirtyBitmapPrefix + bitmapName;

    public ValueTask<NbdMetaExtent> GetExtentAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (offset >= _bits.DiskSize)
        {
            // The export grew past the bitmap (it never shrinks under one): nothing there was tracked.
            throw BlockException.Invalid($"offset {offset} is past the {_bits.DiskSize} bytes bitmap '{Name}' covers");
        }

        var (dirty, run) = _bits.GetRun(offset, length);
        return ValueTask.FromResult(new NbdMetaExtent(run, dirty ? NbdWire.StateDirty : 0));
    }
}
