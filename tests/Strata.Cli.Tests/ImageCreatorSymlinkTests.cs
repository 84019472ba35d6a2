using Strata.TestKit;

namespace Strata.Cli.Tests;

/// <summary>
/// <c>img create</c> and <c>img convert</c> make their target through ImageCreator: an existing
/// regular file is truncated, as qemu-img does, but a symbolic link at the target's name is never
/// written through: it may point anywhere, at a file the user never meant.
/// </summary>
public sealed class ImageCreatorSymlinkTests : IDisposable
{
    private static readonly byte[] Precious = "the host's precious file\n"u8.ToArray();

    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("create", "raw")]
    [InlineData("create", "qcow2")]
    [InlineData("convert", "raw")]
    [InlineData("convert", "qcow2")]
    public void ASymlinkAtTheTargetIsRefusedWithOneLineAndItsTargetUntouched(string command, string format)
    {
        string victim = _dir.File("victim");
        File.WriteAllBytes(victim, Precious);
        string link = _dir.File("new.img");
        File.CreateSymbolicLink(link, victim);
        string source = _dir.File("src.raw");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", source, "1M").AssertSuccess();

        var result = command == "create"
            ? StrataCli.Img("create", "-q", "-f", format, link, "1M")
            : StrataCli.Img("convert", "-f", "raw", "-O", format, source, link);

        Assert.Equal(1, result.ExitCode);
        Assert.Single(result.Stderr.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("strata img: ", result.Stderr);
        Assert.Contains($"Could not create '{link}': it is a symbolic link, which is never followed", result.Stderr);
        Assert.Equal(Precious, File.ReadAllBytes(victim));
        Assert.Equal(victim, new FileInfo(link).LinkTarget);
    }

    [Fact]
    public void ADanglingSymlinkAtTheTargetCreatesNothing()
    {
        string link = _dir.File("new.img");
        File.CreateSymbolicLink(link, _dir.File("elsewhere"));

        var result = StrataCli.Img("create", "-q", "-f", "raw", link, "1M");

        Assert.Equal(1, result.ExitCode);
        Assert.False(File.Exists(_dir.File("elsewhere")));
    }

    [Fact]
    public void AnExistingRegularFileIsTruncatedAsQemuImgDoes()
    {
        string image = _dir.File("a.img");
        File.WriteAllBytes(image, new byte[3 << 20]);
        QemuIo.Ok(image, "raw", "write -P 7 0 1M");

        StrataCli.ImgOk("create", "-q", "-f", "raw", image, "1M");

        Assert.Equal(1 << 20, new FileInfo(image).Length);
        QemuIo.Ok(image, "raw", "read -P 0 0 1M");
    }
}
