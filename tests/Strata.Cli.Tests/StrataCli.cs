using Strata.TestKit;

namespace Strata.Cli.Tests;

/// <summary>The strata command line run in-process (fast, no process start), with the result type of every run.</summary>
public static class StrataCli
{
    /// <summary>`strata ARGS` in-process.</summary>
    public static ProcessResult Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return new ProcessResult($"strata {string.Join(' ', args)} (in process)", code, output.ToString(), error.ToString());
    }

    /// <summary>`strata img ARGS` in-process.</summary>
    public static ProcessResult Img(params string[] args) => Run(["img", .. args]);

    /// <summary>`strata img ARGS`, asserting success.</summary>
    public static ProcessResult ImgOk(params string[] args) => Img(args).AssertSuccess();
}
