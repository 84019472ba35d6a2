namespace Strata.Formats.Rbd;

/// <summary>Starting librbd's asynchronous requests: each returns the request's result, 0 or a negative errno.</summary>
public sealed partial class RbdImageNode
{
    private unsafe ValueTask<long> StartRead(long offset, Memory<byte> buffer)
    {
        var request = _completions.Rent();
        IntPtr completion = request.Start(buffer, out byte* pointer);
        return Started(request, completion, RbdNative.AioRead(_image, (ulong)offset, (nuint)buffer.Length, pointer, completion));
    }

    private unsafe ValueTask<long> StartWrite(long offset, ReadOnlyMemory<byte> data)
    {
        var request = _completions.Rent();
        IntPtr completion = request.Start(data, out byte* pointer);
        return Started(request, completion, RbdNative.AioWrite(_image, (ulong)offset, (nuint)data.Length, pointer, completion));
    }

    private unsafe ValueTask<long> StartWriteZeroes(long offset, long length, int zeroFlags)
    {
        var request = _completions.Rent();
        IntPtr completion = request.Start(default, out _);
        int started;
        try
        {
            started = RbdNative.AioWriteZeroes(_image, (ulong)offset, (nuint)length, completion, zeroFlags, 0);
        }
        catch (EntryPointNotFoundException)
        {
            request.Abandon(completion, RbdErrors.Unsupported);
            return request.Task;
        }

        return Started(request, completion, started);
    }

    private unsafe ValueTask<long> StartDiscard(long offset, long length)
    {
        var request = _completions.Rent();
        IntPtr completion = request.Start(default, out _);
        return Started(request, completion, RbdNative.AioDiscard(_image, (ulong)offset, (ulong)length, completion));
    }

    private unsafe ValueTask<long> StartFlush()
    {
        var request = _completions.Rent();
        IntPtr completion = request.Start(default, out _);
        return Started(request, completion, RbdNative.AioFlush(_image, completion));
    }

    /// <summary>A request librbd refused at once gets no callback: it completes here with that refusal.</summary>
    private static ValueTask<long> Started(RbdCompletion request, IntPtr completion, int started)
    {
        if (started < 0)
        {
            request.Abandon(completion, started);
        }

        return request.Task;
    }
}
