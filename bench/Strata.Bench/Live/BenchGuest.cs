using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Strata.Bench.Live;

/// <summary>
/// The test guest of guest/ (docs/guest-vm.md) for a benchmark: built once per run of the program
/// (guest/build-initramfs.sh, cached in artifacts/guest-cache), booted under qemu-system-x86_64
/// (TCG) with its data disk an NBD export and qemu-ga on its virtio-serial port, its console in a
/// file the waits read. Never the host: the freeze goes to the guest's own file systems.
/// </summary>
internal sealed partial class BenchGuest : IAsyncDisposable
{
    private static readonly TimeSpan BootWait = TimeSpan.FromSeconds(120);

    private readonly RunningProcess _qemu;
    private readonly string _console;

    private BenchGuest(RunningProcess qemu, string console, string agentSocket)
    {
        _qemu = qemu;
        _console = console;
        AgentSocket = agentSocket;
    }

    public string AgentSocket { get; }

    /// <summary>Builds the kernel and initramfs into <paramref name="folder"/>; returns their paths.</summary>
    public static async Task<(string Kernel, string Initramfs)> BuildAsync(string folder, CancellationToken cancellationToken)
    {
        string root = RepositoryRoot();
        await RunAsync(Path.Combine(root, "guest", "build-initramfs.sh"),
            ["--cache", Path.Combine(root, "artifacts", "guest-cache"), "--out", folder], TimeSpan.FromMinutes(10), cancellationToken);
        return (Path.Combine(folder, "vmlinuz"), Path.Combine(folder, "initramfs.gz"));
    }

    /// <summary>An ext4 data disk of <paramref name="megabytes"/> MiB for the guest's writer.</summary>
    public static async Task<string> DiskAsync(string folder, int megabytes, CancellationToken cancellationToken)
    {
        string disk = Path.Combine(folder, "guest-disk.raw");
        await RunAsync("qemu-img", ["create", "-q", "-f", "raw", disk, $"{megabytes}M"], TimeSpan.FromMinutes(1), cancellationToken);
        await RunAsync("mkfs.ext4", ["-q", "-F", disk], TimeSpan.FromMinutes(1), cancellationToken);
        return disk;
    }

    /// <summary>Boots the writer guest on the export "disk" at <paramref name="nbdSocket"/> and waits until it completed a few files.</summary>
    public static async Task<BenchGuest> BootWriterAsync((string Kernel, string Initramfs) build, string folder, string nbdSocket, int seed,
        CancellationToken cancellationToken)
    {
        string console = Path.Combine(folder, "console.log"), agent = Path.Combine(folder, "qga.sock");
        var qemu = RunningProcess.Start("qemu-system-x86_64",
        [
            "-accel", "tcg", "-m", "512", "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", build.Kernel, "-initrd", build.Initramfs,
            "-append", $"console=ttyS0 panic=-1 quiet strata.role=writer strata.agent=qemu-ga strata.seed={seed}",
            "-serial", $"file:{console}",
            "-blockdev", $"driver=nbd,server.type=unix,server.path={nbdSocket},export=disk,node-name=data0",
            "-device", "virtio-blk-pci,drive=data0",
            "-chardev", $"socket,path={agent},server=on,wait=off,id=qga0",
            "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        ]);
        var guest = new BenchGuest(qemu, console, agent);
        try
        {
            await guest.WaitForCompletedAsync(3, cancellationToken);
            return guest;
        }
        catch
        {
            await guest.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync() => _qemu.DisposeAsync();

    private async Task WaitForCompletedAsync(int files, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            string text = File.Exists(_console) ? await File.ReadAllTextAsync(_console, cancellationToken) : "";
            if (text.Contains("strata-guest: FAIL", StringComparison.Ordinal) || _qemu.HasExited)
            {
                throw new InvalidOperationException($"the guest failed or stopped: {text.Trim()}");
            }

            if (CompleteLine().Count(text) >= files)
            {
                return;
            }

            if (clock.Elapsed > BootWait)
            {
                throw new TimeoutException($"the guest's writer did not complete {files} files within {BootWait.TotalSeconds:0} s: {text.Trim()}");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    private static async Task RunAsync(string program, string[] args, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var (exit, _, stderr, _) = await BenchProcess.RunAsync(program, args, null, timeout, cancellationToken);
        if (exit != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(program)} failed ({exit}): {stderr.Trim()}");
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "guest", "build-initramfs.sh")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository's guest/ folder above the benchmark");
    }

    [GeneratedRegex(@"strata-guest: complete \d+")]
    private static partial Regex CompleteLine();
}
