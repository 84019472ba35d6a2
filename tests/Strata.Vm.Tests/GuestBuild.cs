using Strata.TestKit;

namespace Strata.Vm.Tests;

/// <summary>
/// The test guest, built once per test run: strata-agent published as a native executable, then
/// guest/build-initramfs.sh, which fetches and unpacks the Debian packages into a cache folder
/// keyed by their versions (artifacts/guest-cache), so only the first run on a machine downloads.
/// </summary>
public sealed class GuestBuild : IAsyncLifetime, IDisposable
{
    private readonly TempFolder _out = new("guest");

    public string Kernel => _out.File("vmlinuz");

    public string Initramfs => _out.File("initramfs.gz");

    public static string RepositoryRoot => Repository.Root;

    public async Task InitializeAsync()
    {
        string root = RepositoryRoot;
        string agentOut = Path.Combine(root, "artifacts", "agent");
        var slow = new ProcessOptions { Timeout = TimeSpan.FromMinutes(8) };
        (await Processes.RunAsync(Processes.DotnetHost(),
            ["publish", Path.Combine(root, "src", "Strata.Agent", "Strata.Agent.csproj"), "-c", "Release", "-r", "linux-x64", "-o", agentOut, "-nologo", "-v", "quiet"],
            slow)).AssertSuccess();
        (await Processes.RunAsync(Path.Combine(root, "guest", "build-initramfs.sh"),
            ["--cache", Path.Combine(root, "artifacts", "guest-cache"), "--out", _out.Path,
             "--agent", Path.Combine(agentOut, "strata-agent"), "--hooks", Path.Combine(root, "guest", "hooks")],
            slow)).AssertSuccess();
    }

    public Task DisposeAsync()
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _out.Dispose();
}
