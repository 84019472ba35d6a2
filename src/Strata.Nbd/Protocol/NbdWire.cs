namespace Strata.Nbd.Protocol;

/// <summary>Magic numbers and fixed sizes of the NBD wire format (proto.md, "Protocol phases").</summary>
public static class NbdWire
{
    /// <summary>"NBDMAGIC": the first 8 bytes a server sends.</summary>
    public const ulong InitialMagic = 0x4e42444d41474943;

    /// <summary>"IHAVEOPT": newstyle negotiation, and the prefix of every client option.</summary>
    public const ulong OptionMagic = 0x49484156454F5054;

    /// <summary>Prefix of every option reply.</summary>
    public const ulong OptionReplyMagic = 0x3e889045565a9;

    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    /// <summary>Request header: magic(4) flags(2) type(2) cookie(8) offset(8) length(4).</summary>
    public const int RequestHeaderSize = 28;

    /// <summary>Simple reply header: magic(4) error(4) cookie(8).</summary>
    public const int SimpleReplyHeaderSize = 16;

    /// <summary>Structured reply chunk header: magic(4) flags(2) type(2) cookie(8) length(4).</summary>
    public const int ChunkHeaderSize = 20;

    /// <summary>Option reply header: magic(8) option(4) type(4) length(4).</summary>
    public const int OptionReplyHeaderSize = 20;

    /// <summary>Strings (export names, messages) "MUST be no longer than 4096 bytes" (proto.md, Conventions).</summary>
    public const int MaxStringLength = 4096;

    /// <summary>Handshake flag: the server speaks fixed newstyle.</summary>
    public const ushort FlagFixedNewstyle = 1;

    /// <summary>Handshake flag: the 124 zero bytes after NBD_OPT_EXPORT_NAME may be omitted.</summary>
    public const ushort FlagNoZeroes = 2;

    /// <summary>Client flag: the client speaks fixed newstyle.</summary>
    public const uint ClientFlagFixedNewstyle = 1;

    /// <summary>Client flag: the client does not want the 124 zero bytes.</summary>
    public const uint ClientFlagNoZeroes = 2;

    /// <summary>Block status flags of the base:allocation context (proto.md, "base:allocation metadata context").</summary>
    public const uint StateHole = 1;

    public const uint StateZero = 2;

    public const string BaseAllocation = "base:allocation";

    /// <summary>QEMU's context: 0 unallocated, 1 the top layer, N the (N-1)th backing file (qemu docs/interop/nbd.rst).</summary>
    public const string QemuAllocationDepth = "qemu:allocation-depth";

    /// <summary>The prefix of QEMU's dirty-bitmap contexts, "qemu:dirty-bitmap:NAME" (qemu docs/interop/nbd.rst).</summary>
    public const string QemuDirtyBitmapPrefix = "qemu:dirty-bitmap:";

    /// <summary>The one flag of a dirty-bitmap context: the granule was written since the bitmap last was clear.</summary>
    public const uint StateDirty = 1;
}
