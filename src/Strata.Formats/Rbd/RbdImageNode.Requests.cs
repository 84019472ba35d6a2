using Strata.Block;

namespace Strata.Formats.Rbd;

/// <summary>
/// Starting librbd's asynchronous requests: each returns the started request, whose result is 0 or
/// a negative errno (<see cref="RbdCompletion.Task"/>) or an error (<see cref="RbdCompletion.Checked"/>).
/// </summary>
public sealed partial class RbdImageNode
{
    private unsafe RbdCompletion StartRead(long offset, Memory<byte> buffer)
    {
        var request = Rent("read", offset, InlineCompletion.IsOfferedTo(this));
        IntPtr completion = request.Start(buffer, out byte* pointer);
        return Started(request, completion, RbdNative.AioRead(_image, (ulong)offset, (nuint)buffer.Length, pointer, completion));
    }

    private unsafe RbdCompletion StartWrite(long offset, ReadOnlyMemory<byte> data, bool mayCompleteInline)
    {
        var request = Rent("write", offset, mayCompleteInline && InlineCompletion.IsOfferedTo(this));
        IntPtr completion = request.Start(data, out byte* pointer);
        return Started(request, completion, RbdNative.AioWrite(_image, (ulong)offset, (nuint)data.Length, pointer, completion));
    }

    private unsafe RbdCompletion StartWriteZeroes(long offset, long length, int zeroFlags)
    {
        var request = Rent("write zeroes", offset);
        IntPtr completion = request.Start(default, out _);
        int started;
        try
        {
            started = RbdNative.AioWriteZeroes(_image, (ulong)offset, (nuint)length, completion, zeroFlags, 0);
        }
        catch (EntryPointNotFoundException)
        {
            request.Abandon(completion, RbdErrors.Unsupported);
            return request;
        }

        return Started(request, completion, started);
    }

    private unsafe RbdCompletion StartDiscard(long offset, long length)
    {
        var request = Rent("discard", offset);
        IntPtr completion = request.Start(default, out _);
        return Started(request, completion, RbdNative.AioDiscard(_image, (ulong)offset, (ulong)length, completion));
    }

    private unsafe RbdCompletion StartFlush()
    {
        var request = Rent("flush", 0);
        IntPtr completion = request.Start(default, out _);
        return Started(request, completion, RbdNative.AioFlush(_image, completion));
    }

    /// <summary>A request librbd refused at once gets no callback: it completes here with that refusal.</summary>
    private static RbdCompletion Started(RbdCompletion request, IntPtr completion, int started)
    {
        if (started < 0)
        {
            request.Abandon(completion, started);
        }

        return request;
    }

    /// <summary>A pooled completion for one request; <paramref name="inline"/>: its success may be delivered on librbd's thread (<see cref="InlineCompletion"/>).</summary>
    private RbdCompletion Rent(string what, long offset, bool inline = false) => _completions.Rent().Describe(FileName, what, offset, inline);
}
