namespace Strata.TestKit;

/// <summary>
/// A Ceph cluster started by ceph/cluster.sh in a temporary folder: the run's shared one when no
/// running cluster is named (<see cref="CephCluster.Shared"/>), or one test's own, for faults that
/// would disturb every other test on the shared cluster (its OSD stopped and started again). Dispose
/// stops the daemons the script started (by the PIDs it recorded) and deletes the folder.
/// </summary>
public sealed class PrivateCephCluster : IDisposable
{
    private static readonly ProcessOptions ScriptOptions = new() { Timeout = TimeSpan.FromMinutes(2) };

    private readonly TempFolder _folder;

    private PrivateCephCluster(TempFolder folder, CephCluster cluster)
    {
        _folder = folder;
        Cluster = cluster;
    }

    public CephCluster Cluster { get; }

    /// <summary>Starts a cluster (about 15 s) and fails with the script's story when it does not come up.</summary>
    /// <param name="cephx">Authenticate with cephx, as production clusters do (the script's STRATA_CEPH_AUTH=cephx), instead of none.</param>
    public static async Task<PrivateCephCluster> StartAsync(bool cephx = false)
    {
        var folder = new TempFolder("ceph");
        try
        {
            var options = ScriptOptions with { Environment = new Dictionary<string, string?> { ["STRATA_CEPH_AUTH"] = cephx ? "cephx" : "none" } };
            (await Processes.RunAsync("bash", [Repository.File("ceph/cluster.sh"), "start", folder.Path], options)).AssertSuccess();
            return new PrivateCephCluster(folder, CephCluster.FromEnvFile(folder.File("env")));
        }
        catch
        {
            await Processes.RunAsync("bash", [Repository.File("ceph/cluster.sh"), "stop", folder.Path], ScriptOptions);
            folder.Dispose();
            throw;
        }
    }

    /// <summary>Stops the OSD (its objects are kept): every client request waits from now on.</summary>
    public Task StopOsdAsync() => RunScriptAsync("osd-stop", _folder.Path);

    /// <summary>Starts the OSD again; returns once the RBD pool serves.</summary>
    public Task StartOsdAsync() => RunScriptAsync("osd-start", _folder.Path);

    public void Dispose()
    {
        Processes.Run("bash", [Repository.File("ceph/cluster.sh"), "stop", _folder.Path], ScriptOptions);
        _folder.Dispose();
    }

    private static async Task RunScriptAsync(string verb, string folder) =>
        (await Processes.RunAsync("bash", [Repository.File("ceph/cluster.sh"), verb, folder], ScriptOptions)).AssertSuccess();
}
