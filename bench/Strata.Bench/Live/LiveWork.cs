namespace Strata.Bench.Live;

/// <summary>
/// The folder one invocation works in, the images its benchmarks share (each made once, on first
/// use), and the loop every benchmark runs: each run, each server in turn, a fresh folder each.
/// Disposing removes everything.
/// </summary>
internal sealed class LiveWork : IDisposable
{
    private string? _disk;
    private string? _backupDisk;
    private MergeTemplate? _template;

    public LiveWork(LiveOptions options)
    {
        Options = options;
        Servers = ServerKind.Both(options);
        Folder = Path.Combine(options.Dir, $"strata-live-{Environment.ProcessId}");
        Directory.CreateDirectory(Folder);
    }

    public LiveOptions Options { get; }

    public IReadOnlyList<ServerKind> Servers { get; }

    public string Folder { get; }

    /// <summary>A raw image of <see cref="LiveOptions.DiskSize"/>, written with data throughout (no holes).</summary>
    public string Disk() => Filled(ref _disk, "disk.raw", Options.DiskSize);

    /// <summary>A raw image of <see cref="LiveOptions.BackupDiskSize"/>, written with data throughout.</summary>
    public string BackupDisk() => Filled(ref _backupDisk, "backup-disk.raw", Options.BackupDiskSize);

    // A raw image written throughout, made on first use.
    private string Filled(ref string? made, string name, long size)
    {
        if (made is null)
        {
            string path = Path.Combine(Folder, name);
            Console.Error.WriteLine($"live bench: writing a {size >> 20} MiB raw image");
            DataFile.Fill(path, size);
            made = path;
        }

        return made;
    }

    public async Task<MergeTemplate> TemplateAsync(CancellationToken cancellationToken)
    {
        if (_template is null)
        {
            Console.Error.WriteLine($"live bench: building the merge template with qemu-io (seed {Options.Seed})");
            _template = await MergeTemplate.BuildAsync(Path.Combine(Folder, "template"), Options.MergeBaseSize, Options.MergeDataSize, Options.Seed, cancellationToken);
        }

        return _template;
    }

    /// <summary>
    /// Runs <paramref name="body"/> for every run and every item, items alternating within a run,
    /// each in a fresh folder removed afterwards (failures included).
    /// </summary>
    public async Task EachRunAsync<T>(string bench, IReadOnlyList<T> items, Func<T, string> name, Func<T, string, Task> body, CancellationToken cancellationToken)
    {
        for (int run = 1; run <= Options.Runs; run++)
        {
            foreach (var item in items)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Console.Error.WriteLine($"{bench}: run {run}/{Options.Runs}: {name(item)}");
                string folder = Path.Combine(Folder, "run");
                Directory.CreateDirectory(folder);
                try
                {
                    await body(item, folder);
                }
                finally
                {
                    Directory.Delete(folder, recursive: true);
                }
            }
        }
    }

    /// <summary><see cref="EachRunAsync"/> over the servers; each server's results by its name, in run order.</summary>
    public async Task<Dictionary<string, List<T>>> EachServerRunAsync<T>(string bench, Func<ServerKind, string, Task<T>> once, CancellationToken cancellationToken)
    {
        var results = Servers.ToDictionary(s => s.Name, _ => new List<T>());
        await EachRunAsync(bench, Servers, s => s.Name, async (server, folder) => results[server.Name].Add(await once(server, folder)), cancellationToken);
        return results;
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}
