namespace Strata.Block;

/// <summary>What a check may fix (<c>check -r</c>).</summary>
public enum ImageRepair
{
    None,

    /// <summary>-r leaks: free what no metadata uses.</summary>
    Leaks,

    /// <summary>-r all: also fix repairable corruption.</summary>
    All,
}
