using System.CommandLine;

namespace Strata.Cli.Img;

/// <summary>
/// `strata img …`: the offline image tool, spelled like qemu-img. <see cref="Program.Run"/> hands
/// `img` command lines to <see cref="ImgTool"/>; this entry exists so that `strata --help` lists it.
/// </summary>
public static class ImgCommand
{
    public static Command Build()
    {
        var command = new Command("img", "Create, inspect, check, convert and commit disk images (like qemu-img).")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        command.SetAction(parseResult => ImgTool.RunAsync(parseResult.UnmatchedTokens.ToArray(), Console.Out, Console.Error).GetAwaiter().GetResult());
        return command;
    }
}
