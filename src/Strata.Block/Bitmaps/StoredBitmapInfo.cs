namespace Strata.Block.Bitmaps;

/// <summary>One bitmap an image stores, as <c>qemu-img info</c> lists it.</summary>
/// <param name="Name">Its name, unique in the image.</param>
/// <param name="Granularity">Bytes per bit.</param>
/// <param name="Enabled">QEMU's "auto" flag: it records writes when the image is opened read-write.</param>
/// <param name="InUse">Left in use: a writer had it open and did not save it (after a crash, inconsistent).</param>
public readonly record struct StoredBitmapInfo(string Name, long Granularity, bool Enabled, bool InUse);
