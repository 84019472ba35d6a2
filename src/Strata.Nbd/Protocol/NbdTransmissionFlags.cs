namespace Strata.Nbd.Protocol;

/// <summary>Transmission flags sent with the export size (proto.md, "Transmission flags").</summary>
[Flags]
public enum NbdTransmissionFlags : ushort
{
    None = 0,
    HasFlags = 1,
    ReadOnly = 2,
    SendFlush = 4,
    SendFua = 8,
    Rotational = 16,
    SendTrim = 32,
    SendWriteZeroes = 64,
    SendDontFragment = 128,
    CanMultiConnection = 256,
    SendResize = 512,
    SendCache = 1024,
    SendFastZero = 2048,
}
