namespace Strata.Cli.Img;

/// <summary>One <c>strata img</c> command: its name, one-line synopsis, manual page and action.</summary>
public sealed record ImgSubcommand(string Name, string Synopsis, string Manual, Func<IReadOnlyList<string>, ImgContext, Task<int>> RunAsync);
