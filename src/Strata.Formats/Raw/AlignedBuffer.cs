using System.Runtime.InteropServices;

namespace Strata.Formats.Raw;

/// <summary>
/// Native memory that starts on an alignment boundary (NativeMemory.AlignedAlloc), as an O_DIRECT
/// transfer needs: managed arrays guarantee no more than 8 bytes. Freed on dispose (or, if leaked,
/// by the finalizer).
/// </summary>
internal sealed unsafe class AlignedBuffer : IDisposable
{
    private byte* _pointer;

    public AlignedBuffer(int length, int alignment)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        Length = length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, (nuint)alignment);
    }

    ~AlignedBuffer() => Free();

    public int Length { get; }

    public Span<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return new Span<byte>(_pointer, Length);
        }
    }

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    private void Free()
    {
        byte* pointer = _pointer;
        _pointer = null;
        if (pointer != null)
        {
            NativeMemory.AlignedFree(pointer);
        }
    }
}
