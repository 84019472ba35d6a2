namespace Strata.Block.Drivers;

/// <summary>One option a format takes when an image is created: its name, value type and default (null: none).</summary>
public sealed record CreateOption(string Name, CreateOptionType Type, string? Default = null)
{
    /// <summary>The virtual size (every format has it).</summary>
    public const string Size = "size";

    /// <summary>The backing file's name, as it will be recorded.</summary>
    public const string BackingFile = "backing_file";

    /// <summary>The backing file's format, as it will be recorded.</summary>
    public const string BackingFormat = "backing_fmt";
}
