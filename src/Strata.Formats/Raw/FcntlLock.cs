using System.Runtime.InteropServices;

namespace Strata.Formats.Raw;

/// <summary>
/// Linux's <c>struct flock</c> (fcntl(2)). The same on x86_64 and arm64: two shorts, then 64-bit
/// start and length at offsets 8 and 16, the pid at 24, 32 bytes in all (ImageLockBytesTests checks it).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FcntlLock
{
    public short Type;
    public short Whence;
    public long Start;
    public long Length;

    /// <summary>Must be 0 when taking an open file description lock; F_OFD_GETLK reports -1.</summary>
    public int Pid;
}
