using System.CommandLine;

namespace Strata.Cli.Img;

/// <summary>`strata img …`: the offline image tool, spelled like qemu-img.</summary>
public static class ImgCommand
{
    public static Command Build() => new("img", "Create, inspect, check, convert and commit disk images (like qemu-img).");
}
