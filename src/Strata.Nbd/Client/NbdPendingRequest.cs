using Strata.Nbd.Protocol;

namespace Strata.Nbd.Client;

/// <summary>A request waiting for its reply; the client's receive loop fills it and completes it.</summary>
internal sealed class NbdPendingRequest
{
    public NbdPendingRequest(NbdCommand command, long offset, Memory<byte> buffer)
    {
        Command = command;
        Offset = offset;
        Buffer = buffer;
    }

    public NbdCommand Command { get; }

    public long Offset { get; }

    /// <summary>Where read data lands (a read's destination), empty otherwise.</summary>
    public Memory<byte> Buffer { get; }

    public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public NbdErrno Error { get; set; }

    public string? Message { get; set; }

    /// <summary>Bytes of a structured read covered so far (data or hole chunks).</summary>
    public long Covered { get; set; }

    public Dictionary<uint, List<NbdStatusExtent>> Status { get; } = [];
}
