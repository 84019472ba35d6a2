using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.TestKit;

/// <summary>dirty_bitmap "files" held in memory by full path: the <see cref="IBitmapFiles"/> a test gives a drive or a daemon.</summary>
public sealed class MemoryBitmapFiles : IBitmapFiles
{
    // Protects _files.
    private readonly Lock _lock = new();
    private readonly Dictionary<string, MemoryBitmapFile> _files = [];

    public MemoryBitmapFile this[string path]
    {
        get
        {
            lock (_lock)
            {
                return _files[Path.GetFullPath(path)];
            }
        }
    }

    public bool Exists(string path)
    {
        lock (_lock)
        {
            return _files.ContainsKey(Path.GetFullPath(path));
        }
    }

    public ValueTask<IBitmapStore> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (!_files.TryGetValue(Path.GetFullPath(path), out var file))
            {
                throw BlockException.Invalid($"Could not open '{path}': No such file or directory");
            }

            return ValueTask.FromResult<IBitmapStore>(Store(path, file));
        }
    }

    public ValueTask<IBitmapStore> CreateAsync(string path, long diskSize, long granularity, CancellationToken cancellationToken = default)
    {
        DirtyBitmap.ValidateGranularity(granularity);
        lock (_lock)
        {
            string full = Path.GetFullPath(path);
            if (_files.ContainsKey(full))
            {
                throw BlockException.Invalid($"Could not create '{path}': File exists");
            }

            var file = new MemoryBitmapFile(Path.GetFileName(path), diskSize, granularity);
            _files.Add(full, file);
            return ValueTask.FromResult<IBitmapStore>(Store(path, file));
        }
    }

    private MemoryBitmapStore Store(string path, MemoryBitmapFile file) => new(file, Path.GetFileName(path), () =>
    {
        lock (_lock)
        {
            _files.Remove(Path.GetFullPath(path));
        }
    });
}
