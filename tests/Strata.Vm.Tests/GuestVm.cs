using System.Globalization;
using System.Text.RegularExpressions;
using Strata.TestKit;

namespace Strata.Vm.Tests;

/// <summary>
/// One boot of the test guest under qemu-system-x86_64 (TCG): its data disk is an NBD export of a
/// strata daemon (-blockdev driver=nbd over a unix socket), its agent port the unix socket
/// <see cref="AgentSocket"/>, its serial console this process's standard output, where guest/init
/// writes the "strata-guest: …" lines the waits here look for. Dispose kills qemu by its PID.
/// </summary>
public sealed partial class GuestVm : IAsyncDisposable
{
    public static readonly TimeSpan BootWait = TimeSpan.FromSeconds(60);

    private readonly BackgroundProcess _qemu;

    private GuestVm(BackgroundProcess qemu, string agentSocket)
    {
        _qemu = qemu;
        AgentSocket = agentSocket;
    }

    public string AgentSocket { get; }

    public string Console => _qemu.Stdout;

    /// <summary>The highest file number the writer reported complete (fsynced and logged) so far.</summary>
    public int Completed => CompleteLine().Matches(Console).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();

    /// <summary>Boots the guest with <paramref name="kernelArgs"/> (strata.role=…, strata.agent=…, see guest/init).</summary>
    public static GuestVm Start(GuestBuild build, TempFolder folder, string nbdSocket, string export, string kernelArgs)
    {
        string agentSocket = folder.File("qga.sock");
        var qemu = BackgroundProcess.Start("qemu-system-x86_64",
        [
            "-accel", "tcg", "-m", "512", "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", build.Kernel, "-initrd", build.Initramfs,
            "-append", $"console=ttyS0 panic=-1 quiet {kernelArgs}",
            "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
            "-blockdev", $"driver=nbd,server.type=unix,server.path={nbdSocket},export={export},node-name=data0",
            "-device", "virtio-blk-pci,drive=data0",
            "-chardev", $"socket,path={agentSocket},server=on,wait=off,id=qga0",
            "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        ]);
        return new GuestVm(qemu, agentSocket);
    }

    /// <summary>Waits until the console shows <paramref name="text"/>; fails at once if the guest reports a failure.</summary>
    public async Task WaitForAsync(string text, TimeSpan? timeout = null)
    {
        await _qemu.WaitUntilAsync(() => Failed || Console.Contains(text, StringComparison.Ordinal), $"the guest never printed '{text}'", timeout ?? BootWait);
        ThrowIfFailed();
    }

    /// <summary>Waits until the writer has completed file <paramref name="count"/>.</summary>
    public async Task WaitForCompletedAsync(int count, TimeSpan? timeout = null)
    {
        await _qemu.WaitUntilAsync(() => Failed || Completed >= count, $"the writer never completed file {count}", timeout ?? BootWait);
        ThrowIfFailed();
    }

    /// <summary>The agent's pid in the guest, from init's "agent NAME pid N" line.</summary>
    public int AgentPid => int.Parse(AgentLine().Match(Console).Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>Waits for qemu to exit (the guest powered off) and returns its exit code.</summary>
    public Task<int> WaitForExitAsync(TimeSpan? timeout = null) => _qemu.WaitForExitAsync(timeout ?? BootWait);

    public override string ToString() => _qemu.ToString();

    public ValueTask DisposeAsync() => _qemu.DisposeAsync();

    private bool Failed => Console.Contains("strata-guest: FAIL", StringComparison.Ordinal);

    private void ThrowIfFailed()
    {
        if (Failed)
        {
            throw new InvalidOperationException($"the guest reported a failure:\n{_qemu}");
        }
    }

    [GeneratedRegex(@"strata-guest: complete (\d+)")]
    private static partial Regex CompleteLine();

    [GeneratedRegex(@"strata-guest: agent \S+ pid (\d+)")]
    private static partial Regex AgentLine();
}
