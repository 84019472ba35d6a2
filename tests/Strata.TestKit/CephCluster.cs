namespace Strata.TestKit;

/// <summary>
/// The single-node Ceph cluster the RBD and S3 tests run against (ceph/cluster.sh: a monitor, a
/// manager, a memstore OSD and a RADOS gateway on loopback). One cluster serves a whole test run:
/// when <c>STRATA_CEPH_ENV</c> names the env file of a running cluster (./test.sh starts one for the
/// suite), that one is used; otherwise the first use starts one in a temporary folder and the test
/// process stops it when it exits. A cluster that does not come up fails the test with the script's
/// story; it never skips.
/// </summary>
public sealed class CephCluster
{
    private static readonly Lazy<CephCluster> SharedCluster = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly Dictionary<string, string> _settings;

    private CephCluster(Dictionary<string, string> settings) => _settings = settings;

    /// <summary>The run's cluster, started on first use.</summary>
    public static CephCluster Shared => SharedCluster.Value;

    /// <summary>The cluster's ceph.conf (librados, librbd, the ceph and rbd tools, qemu-img's rbd driver read it).</summary>
    public string Conf => _settings["CEPH_CONF"];

    /// <summary>A pool made for RBD images.</summary>
    public string Pool => _settings["STRATA_RBD_POOL"];

    /// <summary>The gateway's S3 endpoint, http://127.0.0.1:PORT.</summary>
    public string S3Endpoint => _settings["AWS_ENDPOINT_URL"];

    public string AccessKey => _settings["AWS_ACCESS_KEY_ID"];

    public string SecretKey => _settings["AWS_SECRET_ACCESS_KEY"];

    /// <summary>The settings as environment variables, for a child process (CEPH_CONF, AWS_*).</summary>
    public IReadOnlyDictionary<string, string?> Environment => _settings.ToDictionary(p => p.Key, p => (string?)p.Value, StringComparer.Ordinal);

    /// <summary>
    /// The cluster whose ceph/cluster.sh env file is <paramref name="envFile"/>: one a test started for
    /// itself, for faults (an OSD stopped) that the shared cluster must never see.
    /// </summary>
    public static CephCluster FromEnvFile(string envFile) => new(Read(envFile));

    /// <summary>A name for an RBD image or an S3 bucket no other test uses (lower case, letters and digits).</summary>
    public static string UniqueName(string prefix) => $"{prefix}{Guid.NewGuid().ToString("N")[..10]}";

    /// <summary>A setting of the cluster's env file that only some clusters have (a cephx cluster's STRATA_RBD_USER, say); fails when it is missing.</summary>
    public string Setting(string name) =>
        _settings.TryGetValue(name, out string? value) ? value : throw new InvalidOperationException($"the cluster's settings have no {name}");

    /// <summary>QEMU's spelling of an RBD image of this cluster: rbd:POOL/IMAGE:conf=PATH.</summary>
    public string RbdLocator(string image) => $"rbd:{Pool}/{image}:conf={Conf}";

    /// <summary>Runs the <c>rbd</c> tool against the cluster and fails with its story unless it exits 0.</summary>
    public string Rbd(params string[] args) =>
        Processes.Run("rbd", ["-c", Conf, .. args], new ProcessOptions { Timeout = TimeSpan.FromMinutes(2) }).AssertSuccess().Stdout;

    private static CephCluster Start()
    {
        string? envFile = System.Environment.GetEnvironmentVariable("STRATA_CEPH_ENV");
        if (!string.IsNullOrEmpty(envFile))
        {
            return new CephCluster(Read(envFile));
        }

        // Off the test's synchronization context: the start awaits the script.
        var own = Task.Run(() => PrivateCephCluster.StartAsync()).GetAwaiter().GetResult();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => own.Dispose();
        return own.Cluster;
    }

    private static Dictionary<string, string> Read(string envFile)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in System.IO.File.ReadAllLines(envFile))
        {
            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                settings[line[..eq]] = line[(eq + 1)..];
            }
        }

        foreach (string key in new[] { "CEPH_CONF", "STRATA_RBD_POOL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY" })
        {
            if (!settings.ContainsKey(key))
            {
                throw new InvalidOperationException($"{envFile} does not set {key}: not a ceph/cluster.sh env file");
            }
        }

        return settings;
    }
}
