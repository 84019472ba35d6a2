namespace Strata.Block.Drivers;

/// <summary>The value type of a create option.</summary>
public enum CreateOptionType
{
    /// <summary>Free text.</summary>
    String,

    /// <summary>A byte count with an optional k/M/G/T/P/E suffix.</summary>
    Size,

    /// <summary>A whole number.</summary>
    Number,

    /// <summary>on/off (also true/false, yes/no, as every QEMU switch).</summary>
    Bool,
}
