namespace Strata.TestKit;

/// <summary>How <see cref="Processes"/> and <see cref="BackgroundProcess"/> start a child.</summary>
public sealed record ProcessOptions
{
    public static readonly ProcessOptions Default = new();

    /// <summary>How long a one-shot run may take before it is killed with its children and the test fails.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Written to the child's standard input, which is then closed; without it stdin is closed at once.</summary>
    public string? Stdin { get; init; }

    /// <summary>Variables set (or, with a null value, removed) in the child's environment, after <c>LC_ALL=C</c>.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    /// <summary>The child's working folder; the test's own when null.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>These options in <paramref name="folder"/>.</summary>
    public static ProcessOptions In(string folder) => new() { WorkingDirectory = folder };
}
