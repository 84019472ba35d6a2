using System.Text.RegularExpressions;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// Image locks against QEMU's, both ways (docs/locking.md). The oracle is QEMU itself: on a qcow2
/// image held by qemu-storage-daemon, every <c>strata img</c> command must succeed or fail exactly as
/// the same <c>qemu-img</c> command does, with the same lock named; and QEMU's tools must find an
/// image <c>strata serve</c> holds exactly as they find it when qemu-storage-daemon holds it.
/// </summary>
public sealed partial class ImageLockInteropTests
{
    /// <summary>Commands as both tools spell them: T is the held image, B its backing file, O another image, X and N outputs.</summary>
    private static readonly string[][] ImgCommands =
    [
        ["info", "T"], ["info", "-U", "T"], ["info", "B"],
        ["check", "T"], ["check", "-U", "T"], ["check", "-r", "all", "T"],
        ["map", "T"], ["map", "-U", "T"],
        ["compare", "T", "O"], ["compare", "-U", "T", "O"],
        ["convert", "-O", "raw", "T", "X"], ["convert", "-U", "-O", "raw", "T", "X"],
        ["resize", "T", "8M"], ["rebase", "-u", "-b", "B", "-F", "qcow2", "T"], ["commit", "-d", "T"],

        // A new overlay on the held image takes its size from it: read whoever holds it.
        ["create", "-f", "qcow2", "-b", "T", "-F", "qcow2", "N"],

        // Last: were the held image not refused, these would overwrite it.
        ["convert", "-O", "qcow2", "O", "T"], ["create", "-f", "qcow2", "T", "4M"],
    ];

    /// <summary>qemu-io on the held image and on its backing file, for the holder comparison.</summary>
    private static readonly string[][] IoCommands =
    [
        ["-c", "write 0 4k", "T"], ["-r", "-c", "read 0 4k", "T"], ["-c", "write 0 4k", "B"],
    ];

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task StrataImgSucceedsAndFailsAsQemuImgDoesOnAnImageQemuStorageDaemonHolds(bool writable)
    {
        using var folder = new TempFolder("lock");
        var files = await ImagesAsync(folder);
        using var holder = await StartQemuStorageDaemonAsync(folder, files, writable);
        var mismatches = new List<string>();
        foreach (var command in ImgCommands)
        {
            var theirs = Outcome.Of(await Processes.RunAsync("qemu-img", files.Expand(command)));
            var ours = Outcome.Of(await Processes.StrataAsync(["img", .. files.Expand(command)]));
            if (ours != theirs)
            {
                mismatches.Add($"img {string.Join(' ', command)}: qemu-img {theirs}, strata img {ours}");
            }
        }

        Assert.True(mismatches.Count == 0, $"holder writable={writable}:\n{string.Join('\n', mismatches)}");
        await AssertUntouchedAsync(files);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task QemuToolsFindAnImageStrataServesAsTheyFindOneQemuStorageDaemonServes(bool writable)
    {
        using var folder = new TempFolder("lock");
        var files = await ImagesAsync(folder);
        List<Outcome> reference;
        using (await StartQemuStorageDaemonAsync(folder, files, writable))
        {
            reference = await RunQemuToolsAsync(files);
        }

        List<Outcome> found;
        using (var serve = ServeProcess.Start(folder.Path, null, "--drive", $"id=d,file={files.Top}{(writable ? "" : ",readonly=on")}",
            "--nbd", $"unix:{folder.File("s.sock")}"))
        {
            await serve.WaitForFileAsync(folder.File("s.sock"));
            found = await RunQemuToolsAsync(files);
        }

        var commands = ImgCommands.Select(c => "qemu-img " + string.Join(' ', c)).Concat(IoCommands.Select(c => "qemu-io " + string.Join(' ', c))).ToList();
        var mismatches = commands.Select((c, i) => (c, i)).Where(x => reference[x.i] != found[x.i])
            .Select(x => $"{x.c}: against qemu-storage-daemon {reference[x.i]}, against strata serve {found[x.i]}").ToList();
        Assert.True(mismatches.Count == 0, $"holder writable={writable}:\n{string.Join('\n', mismatches)}");
        Assert.Contains(reference, o => !o.Succeeded);
        await AssertUntouchedAsync(files);
    }

    /// <summary>The held image is still the overlay of its backing file: no refused command overwrote it.</summary>
    private static async Task AssertUntouchedAsync(ImageSet files)
    {
        var info = (await Processes.RunAsync("qemu-img", "info", "-U", "--output=json", files.Top)).AssertSuccess();
        Assert.Contains($"\"backing-filename\": \"{files.Base}\"", info.Stdout);
    }

    private static async Task<List<Outcome>> RunQemuToolsAsync(ImageSet files)
    {
        var outcomes = new List<Outcome>();
        foreach (var command in ImgCommands)
        {
            outcomes.Add(Outcome.Of(await Processes.RunAsync("qemu-img", files.Expand(command))));
        }

        foreach (var command in IoCommands)
        {
            outcomes.Add(Outcome.Of(await Processes.RunAsync("qemu-io", files.Expand(command))));
        }

        return outcomes;
    }

    /// <summary>A qcow2 image on a qcow2 backing file, and an unrelated qcow2 image, made by qemu-img.</summary>
    private static async Task<ImageSet> ImagesAsync(TempFolder folder)
    {
        var files = new ImageSet(folder.File("top.qcow2"), folder.File("base.qcow2"), folder.File("other.qcow2"), folder.File("out.img"), folder.File("new.qcow2"));
        (await Processes.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", files.Base, "4M")).AssertSuccess();
        (await Processes.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", files.Base, "-F", "qcow2", files.Top)).AssertSuccess();
        (await Processes.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", files.Other, "4M")).AssertSuccess();
        return files;
    }

    private static Task<Qsd> StartQemuStorageDaemonAsync(TempFolder folder, ImageSet files, bool writable)
    {
        string readOnly = writable ? "off" : "on";
        string socket = folder.File("q.sock");
        return Qsd.StartAsync(socket,
            "--blockdev", $"driver=file,node-name=f0,filename={files.Top},read-only={readOnly}",
            "--blockdev", $"driver=qcow2,node-name=q0,file=f0,read-only={readOnly}",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", $"type=nbd,id=e0,node-name=q0,writable={(writable ? "on" : "off")}");
    }

    [GeneratedRegex("""Failed to get (shared )?"[a-z ]+" lock""")]
    private static partial Regex LockPhrase();

    private sealed record ImageSet(string Top, string Base, string Other, string Output, string NewImage)
    {
        public string[] Expand(string[] command) => [.. command.Select(a => a switch { "T" => Top, "B" => Base, "O" => Other, "X" => Output, "N" => NewImage, _ => a })];
    }

    /// <summary>What a run came to: success, or failure and the lock it names (none when it failed for another reason).</summary>
    private sealed record Outcome(bool Succeeded, string? Lock)
    {
        public static Outcome Of(ProcessResult result)
        {
            var match = LockPhrase().Match(result.Stderr);
            return new Outcome(result.ExitCode == 0, match.Success ? match.Value : result.ExitCode == 0 ? null : $"no lock error: {result.Stderr.Trim()}");
        }

        public override string ToString() => Succeeded ? "succeeds" : $"fails ({Lock})";
    }
}
