using Strata.Block.Bitmaps;
using Strata.Block.Graph;
using Strata.Block.Live;
using Strata.Block.Tests.Graph;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Block.Tests;

/// <summary>
/// A seeded random workload against a drive's bitmaps, in the spirit of qemu-iotests 257: guest
/// writes, write-zeroes and discards, live snapshots (some with bitmap actions in their transaction),
/// live merges with writes running, bitmap add, remove, clear, enable, disable, merge and set_dirty's
/// hand-off, transactions of random lists of those actions (with and without a snapshot; an invalid
/// list changes nothing), and close and reopen (persistent bitmaps in files and in the top image).
/// A model bitmap per bitmap is checked against the real one, bit for bit (SHA-256), after every
/// operation. The bitmap files are held in memory, or in one run are real dirty_bitmap files in a
/// temporary folder, saved and loaded at every close and reopen.
/// </summary>
public sealed class DriveBitmapsModelTests(ITestOutputHelper output)
{
    private const int DiskSize = 1 << 20;
    private static readonly long[] Granularities = [512, 4096, 65536];

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    public async Task EveryBitmapEqualsItsModelAfterEveryOperation(int run, bool realFiles)
    {
        int seed = Environment.GetEnvironmentVariable("STRATA_SEED") is { } given ? int.Parse(given, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next();
        output.WriteLine($"run {run}: seed {seed} (STRATA_SEED={seed} repeats it){(realFiles ? ", dirty_bitmap files on disk" : "")}");
        using var folder = new TempFolder("bmmodel");
        var workload = new Workload(seed, folder, realFiles ? new DirtyBitmapFiles(StandardDrivers.Registry) : new MemoryBitmapFiles(), output);
        try
        {
            await workload.RunAsync(400);
        }
        finally
        {
            await workload.DisposeAsync();
        }
    }

    private sealed class ModelBitmap(DirtyBitmap bits, string kind)
    {
        public DirtyBitmap Bits { get; } = bits;

        /// <summary>"memory", "file" or "image".</summary>
        public string Kind { get; } = kind;

        public bool Recording { get; set; }

        public bool ConsoleSet { get; set; }

        public bool StopsAtSnapshot { get; set; }

        public string? File { get; init; }
    }

    private sealed class Workload(int seed, TempFolder folder, IBitmapFiles files, ITestOutputHelper output) : IAsyncDisposable
    {
        private readonly Random _random = new(seed);
        private readonly MemoryLayerOpener _opener = CreateOpener();
        private readonly IBitmapFiles _files = files;
        private readonly Dictionary<string, ModelBitmap> _model = [];
        private Drive? _drive;
        private int _overlays;
        private int _applied;
        private int _refused;
        private int _step;

        private Drive Drive => _drive!;

        public async Task RunAsync(int operations)
        {
            _drive = await Open("disk.img");
            var recent = new Queue<string>();
            try
            {
                for (_step = 0; _step < operations; _step++)
                {
                    string op = await StepAsync();
                    recent.Enqueue($"step {_step}: {op}");
                    if (recent.Count > 12)
                    {
                        recent.Dequeue();
                    }

                    Check(op);
                }
            }
            catch
            {
                output.WriteLine($"failed at step {_step}; the steps before it:\n{string.Join("\n", recent)}");
                throw;
            }

            output.WriteLine($"random transactions: {_applied} applied, {_refused} refused as the model predicted");
        }

        public async ValueTask DisposeAsync()
        {
            if (_drive is not null)
            {
                await _drive.DisposeAsync();
            }
        }

        private static MemoryLayerOpener CreateOpener()
        {
            var opener = new MemoryLayerOpener();
            opener.Add("disk.img", DiskSize);
            return opener;
        }

        private async Task<Drive> Open(string top)
        {
            var drive = await Drive.OpenAsync("d", top, new LayerOpenOptions(), _opener);
            drive.Bitmaps.Files = _files;
            return drive;
        }

        private async Task<string> StepAsync()
        {
            int pick = _random.Next(100);
            return pick switch
            {
                < 40 => await GuestAsync(),
                < 50 => await AddAsync(),
                < 54 => await ActAsync(BitmapActionKind.Remove),
                < 58 => await ActAsync(BitmapActionKind.Clear),
                < 63 => await ActAsync(BitmapActionKind.Enable),
                < 68 => await ActAsync(BitmapActionKind.Disable),
                < 74 => await MergeBitmapsAsync(),
                < 80 => await SnapshotAsync(),
                < 86 => await TransactionAsync(),
                < 92 => await MergeAsync(),
                _ => await ReopenAsync(),
            };
        }

        private async Task<string> GuestAsync()
        {
            long offset = _random.NextInt64(DiskSize);
            long length = Math.Min(DiskSize - offset, _random.Next(1, 3 * 65536));
            switch (_random.Next(3))
            {
                case 0:
                    await Drive.Gate.WriteAsync(offset, new byte[length]);
                    break;
                case 1:
                    await Drive.Gate.WriteZeroesAsync(offset, length);
                    break;
                default:
                    await Drive.Gate.DiscardAsync(offset, length);
                    break;
            }

            Mark(offset, length);
            return $"guest I/O at {offset} of {length}";
        }

        private void Mark(long offset, long length)
        {
            foreach (var m in _model.Values.Where(m => m.Recording))
            {
                m.Bits.Set(offset, length);
            }
        }

        private async Task<string> AddAsync()
        {
            if (_model.Count >= 5)
            {
                return await GuestAsync();
            }

            string name = $"b{_random.Next(8)}";
            long granularity = Granularities[_random.Next(Granularities.Length)];
            string kind = new[] { "memory", "file", "image", "console", "console" }[_random.Next(5)];
            bool disabled = kind != "console" && _random.Next(4) == 0;
            string? file = kind is "file" or "console" ? folder.File($"{name}-{_step}.dbmp") : null;
            var action = new BitmapAction(BitmapActionKind.Add, Drive, name)
            {
                Granularity = granularity, Disabled = disabled, File = file, Persistent = kind == "image", HandOff = kind == "console",
            };
            if (_model.ContainsKey(name))
            {
                await Assert.ThrowsAsync<BlockException>(() => Drive.ChangeBitmapsAsync([action]));
                return $"add of the existing {name}, refused";
            }

            await Drive.ChangeBitmapsAsync([action]);
            Apply(action);
            return $"add {name} ({kind}, {granularity}{(disabled ? ", disabled" : "")})";
        }

        private async Task<string> ActAsync(BitmapActionKind kind)
        {
            if (_model.Count == 0)
            {
                return await GuestAsync();
            }

            string name = _model.Keys.ElementAt(_random.Next(_model.Count));
            if (kind == BitmapActionKind.Remove && _model[name].Kind == "image")
            {
                // A removed image bitmap would leave frozen copies in older layers that reappear when one becomes the top again.
                kind = BitmapActionKind.Clear;
            }

            var action = new BitmapAction(kind, Drive, name);
            await Drive.ChangeBitmapsAsync([action]);
            Apply(action);
            return $"{kind} {name}";
        }

        private async Task<string> MergeBitmapsAsync()
        {
            if (_model.Count < 2)
            {
                return await AddAsync();
            }

            var names = _model.Keys.OrderBy(_ => _random.Next()).Take(_random.Next(2, Math.Min(4, _model.Count + 1))).ToList();
            var action = new BitmapAction(BitmapActionKind.Merge, Drive, names[0]) { Sources = [.. names.Skip(1).Select(n => new BitmapSource(Drive, n))] };
            await Drive.ChangeBitmapsAsync([action]);
            Apply(action);
            return $"merge {string.Join(", ", names.Skip(1))} into {names[0]}";
        }

        private async Task<string> SnapshotAsync()
        {
            if (Drive.Layers().Count() >= 4)
            {
                return await MergeAsync();
            }

            string overlay = $"overlay{_overlays++}.img";
            var actions = new List<BitmapAction>();
            if (_model.Count > 0 && _random.Next(2) == 0)
            {
                string name = _model.Keys.ElementAt(_random.Next(_model.Count));
                actions.Add(new BitmapAction(_random.Next(2) == 0 ? BitmapActionKind.Disable : BitmapActionKind.Clear, Drive, name));
            }

            if (_model.Count < 5 && !_model.ContainsKey("t") && _random.Next(2) == 0)
            {
                actions.Add(new BitmapAction(BitmapActionKind.Add, Drive, "t") { File = folder.File($"t-{_step}.dbmp") });
            }

            var result = await Drive.SnapshotAsync([new SnapshotRequest(Drive, overlay, SnapshotMode.AbsolutePaths)], actions);
            Assert.Empty(result.BitmapProblems);

            // At the switch: set_dirty's handed-off bitmaps stop, then the transaction's actions apply.
            foreach (var m in _model.Values.Where(m => m.StopsAtSnapshot && m.Recording))
            {
                m.Recording = false;
                m.StopsAtSnapshot = false;
            }

            foreach (var action in actions)
            {
                Apply(action);
            }

            return $"snapshot to {overlay} with {string.Join(", ", actions.Select(a => $"{a.Kind} {a.Name}"))}";
        }

        /// <summary>
        /// A transaction of two to five random bitmap actions, on a snapshot or not. The model
        /// predicts, action by action against what the earlier ones leave (as the plan checks them),
        /// whether the list is valid: if not, it must be refused and change nothing.
        /// </summary>
        private async Task<string> TransactionAsync()
        {
            bool snapshot = Drive.Layers().Count() < 4 && _random.Next(2) == 0;
            var names = _model.Keys.Concat(["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"]).Distinct().ToList();
            var view = _model.ToDictionary(kv => kv.Key, kv => kv.Value.Kind);
            var actions = new List<BitmapAction>();
            bool valid = true;
            for (int count = _random.Next(2, 6), i = 0; i < count; i++)
            {
                var kind = new[] { BitmapActionKind.Add, BitmapActionKind.Clear, BitmapActionKind.Enable, BitmapActionKind.Disable, BitmapActionKind.Merge, BitmapActionKind.Remove }[_random.Next(6)];
                // Mostly what the bitmaps are at this point of the list (a valid action), sometimes any name.
                string name = Pick(kind == BitmapActionKind.Add ? names.Where(n => !view.ContainsKey(n)) : view.Keys, names);
                if (kind == BitmapActionKind.Remove && view.GetValueOrDefault(name) == "image")
                {
                    kind = BitmapActionKind.Clear; // see ActAsync
                }

                var action = kind switch
                {
                    BitmapActionKind.Add => NewAdd(name, actions.Count),
                    BitmapActionKind.Merge => new BitmapAction(kind, Drive, name)
                    {
                        Sources = [.. Enumerable.Range(0, _random.Next(1, 3)).Select(_ => Pick(view.Keys.Where(n => n != name), [.. names.Where(n => n != name)])).Distinct().Select(n => new BitmapSource(Drive, n))],
                    },
                    _ => new BitmapAction(kind, Drive, name),
                };
                valid &= kind == BitmapActionKind.Add ? !view.ContainsKey(name) : view.ContainsKey(name) && action.Sources.All(src => view.ContainsKey(src.Name));
                if (kind == BitmapActionKind.Add)
                {
                    view[name] = action.File is not null ? "file" : action.Persistent ? "image" : "memory";
                }
                else if (kind == BitmapActionKind.Remove)
                {
                    view.Remove(name);
                }

                actions.Add(action);
            }

            string overlay = $"overlay{_overlays++}.img";
            int layers = Drive.Layers().Count();
            string what = $"transaction{(snapshot ? $" with a snapshot to {overlay}" : "")} of {string.Join(", ", actions.Select(a => $"{a.Kind} {a.Name}{(a.Sources.Count > 0 ? $" from {string.Join("+", a.Sources.Select(x => x.Name))}" : "")}"))}";
            Task run = snapshot
                ? (Task)Drive.SnapshotAsync([new SnapshotRequest(Drive, overlay, SnapshotMode.AbsolutePaths)], actions)
                : Drive.ChangeBitmapsAsync(actions);
            if (!valid)
            {
                _refused++;
                await Assert.ThrowsAsync<BlockException>(() => run);
                Assert.True(layers == Drive.Layers().Count(), $"seed {seed}, step {_step}: a refused {what} changed the chain");
                return $"{what}: refused";
            }

            await run;
            _applied++;
            if (snapshot)
            {
                foreach (var m in _model.Values.Where(m => m.StopsAtSnapshot && m.Recording))
                {
                    m.Recording = false;
                    m.StopsAtSnapshot = false;
                }
            }

            foreach (var action in actions)
            {
                Apply(action);
            }

            return what;
        }

        private string Pick(IEnumerable<string> likely, List<string> any)
        {
            var choices = likely.ToList();
            return choices.Count > 0 && _random.Next(10) > 0 ? choices[_random.Next(choices.Count)] : any[_random.Next(any.Count)];
        }

        private BitmapAction NewAdd(string name, int index)
        {
            string kind = new[] { "memory", "file", "image" }[_random.Next(3)];
            return new BitmapAction(BitmapActionKind.Add, Drive, name)
            {
                Granularity = Granularities[_random.Next(Granularities.Length)],
                Disabled = _random.Next(4) == 0,
                File = kind == "file" ? folder.File($"{name}-{_step}-{index}.dbmp") : null,
                Persistent = kind == "image",
            };
        }

        private async Task<string> MergeAsync()
        {
            if (Drive.Layers().Count() < 2)
            {
                return await SnapshotAsync();
            }

            using var job = await Drive.PrepareMergeAsync($"m{_step}", null, null, new CommitJobOptions { AutoComplete = true });
            job.Start();
            for (int i = 0; i < 10; i++)
            {
                await GuestAsync();
            }

            await job.Completion.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(job.Error is null, $"seed {seed}, step {_step}: the merge failed: {job.Error}");
            return "merge of the top into the base, with writes";
        }

        private async Task<string> ReopenAsync()
        {
            string top = Drive.Top.FileName!;
            await Drive.DisposeAsync();
            _drive = null;
            _drive = await Open(top);
            foreach (var (name, m) in _model.ToList())
            {
                m.ConsoleSet = false;
                m.StopsAtSnapshot = false;
                switch (m.Kind)
                {
                    case "memory":
                        _model.Remove(name);
                        break;
                    case "file":
                        // As --bitmap names it on the command line: it records again.
                        await Drive.ChangeBitmapsAsync([new BitmapAction(BitmapActionKind.Add, Drive, name) { File = m.File }]);
                        m.Recording = true;
                        break;
                }
            }

            return $"close and reopen on {top}";
        }

        private void Apply(BitmapAction action)
        {
            switch (action.Kind)
            {
                case BitmapActionKind.Add:
                {
                    if (action.HandOff)
                    {
                        foreach (var earlier in _model.Values.Where(m => m.ConsoleSet && m.Recording))
                        {
                            earlier.StopsAtSnapshot = true;
                        }
                    }

                    string kind = action.File is not null ? "file" : action.Persistent ? "image" : "memory";
                    _model[action.Name] = new ModelBitmap(new DirtyBitmap(DiskSize, action.Granularity ?? DriveBitmaps.DefaultGranularity), kind)
                    {
                        Recording = !action.Disabled, ConsoleSet = action.HandOff, File = action.File,
                    };
                    break;
                }

                case BitmapActionKind.Remove:
                    _model.Remove(action.Name);
                    break;
                case BitmapActionKind.Clear:
                    _model[action.Name].Bits.ClearAll();
                    break;
                case BitmapActionKind.Enable:
                    _model[action.Name].Recording = true;
                    break;
                case BitmapActionKind.Disable:
                    _model[action.Name].Recording = false;
                    _model[action.Name].StopsAtSnapshot = false;
                    break;
                case BitmapActionKind.Merge:
                    foreach (var source in action.Sources.Where(s => s.Name != action.Name))
                    {
                        _model[action.Name].Bits.MergeFrom(_model[source.Name].Bits);
                    }

                    break;
            }
        }

        private void Check(string op)
        {
            string where = $"seed {seed}, step {_step} ({op})";
            Assert.True(_model.Keys.Order().SequenceEqual(Drive.Bitmaps.All.Select(b => b.Name).Order()),
                $"{where}: the drive has bitmaps {string.Join(",", Drive.Bitmaps.All.Select(b => b.Name))}, the model {string.Join(",", _model.Keys)}");
            foreach (var (name, m) in _model)
            {
                var real = Drive.Bitmaps.Find(name)!;
                Assert.True(m.Recording == real.Recording, $"{where}: bitmap {name} records: {real.Recording}, model: {m.Recording}");
                Assert.True(m.Bits.Sha256() == real.Bits.Sha256(), $"{where}: bitmap {name} differs from its model");
                Assert.True(real.Persistent == (m.Kind != "memory"), $"{where}: bitmap {name} persistent: {real.Persistent}");
            }
        }
    }
}
