namespace Strata.Daemon.Control;

/// <summary>The JSON type an argument must have, spelled as QEMU names it in "expected: …".</summary>
public enum QmpType
{
    String,

    /// <summary>A number without fraction or exponent that fits in 64 bits.</summary>
    Integer,
    Boolean,
    Array,
    Object,

    /// <summary>A node's name or its definition (qapi/block-core.json BlockdevRef).</summary>
    StringOrObject,
}
