namespace Strata.Nbd.Protocol;

/// <summary>Option reply types (proto.md, "Option reply types"); errors have the top bit set.</summary>
public enum NbdOptionReply : uint
{
    Ack = 1,
    Server = 2,
    Info = 3,
    MetaContext = 4,
    ErrorUnsupported = 0x80000001,
    ErrorPolicy = 0x80000002,
    ErrorInvalid = 0x80000003,
    ErrorPlatform = 0x80000004,
    ErrorTlsRequired = 0x80000005,
    ErrorUnknown = 0x80000006,
    ErrorShutdown = 0x80000007,
    ErrorBlockSizeRequired = 0x80000008,
    ErrorTooBig = 0x80000009,
}
