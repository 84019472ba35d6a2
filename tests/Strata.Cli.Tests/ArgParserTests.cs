using Strata.Cli.Img;

namespace Strata.Cli.Tests;

public sealed class ArgParserTests
{
    private readonly ArgParser _parser = new("f:pqb:", "output=", "shrink");

    [Fact]
    public void BundledFlagsAttachedValuesAndPermutedPositionalsParseLikeGetopt()
    {
        var parsed = _parser.Parse(["file", "-pq", "-fqcow2", "--output", "json", "-b", "", "--shrink", "10G"]);
        Assert.True(parsed.Has("p"));
        Assert.True(parsed.Has("q"));
        Assert.Equal("qcow2", parsed.Get("f"));
        Assert.Equal("json", parsed.Get("output"));
        Assert.Equal("", parsed.Get("b"));
        Assert.True(parsed.Has("shrink"));
        Assert.Equal(["file", "10G"], parsed.Positionals);
    }

    [Fact]
    public void DoubleDashEndsOptions()
    {
        var parsed = _parser.Parse(["-q", "--", "-1G", "--output=json"]);
        Assert.Equal(["-1G", "--output=json"], parsed.Positionals);
    }

    [Fact]
    public void UnknownOptionsAndMissingValuesAreErrors()
    {
        Assert.Equal("invalid option -- 'z'", Assert.Throws<CliException>(() => _parser.Parse(["-z"])).Message);
        Assert.Equal("unrecognized option '--nope'", Assert.Throws<CliException>(() => _parser.Parse(["--nope"])).Message);
        Assert.Equal("option requires an argument -- 'f'", Assert.Throws<CliException>(() => _parser.Parse(["-f"])).Message);
    }
}
