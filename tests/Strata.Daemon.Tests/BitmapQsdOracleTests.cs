using System.Text.Json.Nodes;
using Strata.Block.Bitmaps;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// qemu-storage-daemon as the oracle of bitmap semantics (qapi/block-core.json, block/dirty-bitmap.c):
/// one seeded sequence of bitmap commands and guest writes, write-zeroes and discards over NBD, applied
/// to `strata serve` and to qsd on copies of the same raw image; after every step each bitmap's
/// x-debug-block-dirty-bitmap-sha256 is the same on both and equals a model's. Strata names a drive,
/// qsd the format node the export writes through.
/// </summary>
public sealed class BitmapQsdOracleTests
{
    private const long Size = 16 << 20;
    private const int Steps = 120;
    private const string QsdNode = "fmt0";
    private static readonly string[] Names = ["b0", "b1", "b2", "b3"];

    [Theory]
    [InlineData(1301)]
    [InlineData(1302)]
    [InlineData(1303)]
    public async Task EveryBitmapHasQsdsHashAfterEveryStepOfASeededSequence(int seed)
    {
        using var folder = new TempFolder("bmqsd");
        string strataImage = folder.File("strata.img"), qsdImage = folder.File("qsd.img");
        foreach (var image in new[] { strataImage, qsdImage })
        {
            Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, Size.ToString()).AssertSuccess();
        }

        await using var strata = await DaemonProcess.StartAsync(folder.Path, strataImage, "raw");
        string qsdSocket = folder.File("q.sock");
        await using var qsd = await Qsd.StartAsync(qsdSocket, folder.File("q.qmp"), [
            "--blockdev", $"driver=file,node-name=file0,filename={qsdImage},discard=unmap",
            "--blockdev", $"driver=raw,node-name={QsdNode},file=file0,discard=unmap",
            "--nbd-server", $"addr.type=unix,addr.path={qsdSocket}",
            "--export", $"type=nbd,id=exp0,node-name={QsdNode},name=disk,writable=on"]);
        var sides = new[]
        {
            new Side("strata", LiveDaemon.DriveId, await strata.ConnectQmpAsync(), await strata.ConnectNbdAsync()),
            new Side("qsd", QsdNode, await qsd.ConnectQmpAsync(), await NbdClient.ConnectAsync(NbdEndpoint.Unix(qsdSocket), "disk")),
        };
        var model = new Dictionary<string, ModelBitmap>();
        var random = new Random(seed);
        try
        {
            for (int step = 0; step < Steps; step++)
            {
                string what = await StepAsync(random, sides, model);
                foreach (var (name, bitmap) in model)
                {
                    string expected = bitmap.Bits.Sha256();
                    foreach (var side in sides)
                    {
                        string actual = await side.Sha256Async(name);
                        Assert.True(expected == actual, $"seed {seed}, step {step} ({what}): {side.Name}'s {name} differs from the model");
                    }
                }
            }
        }
        finally
        {
            foreach (var side in sides)
            {
                await side.DisposeAsync();
            }
        }
    }

    /// <summary>One seeded step, the same on both sides and in the model; returns what it did, for failure messages.</summary>
    private static async Task<string> StepAsync(Random random, Side[] sides, Dictionary<string, ModelBitmap> model)
    {
        string[] present = [.. model.Keys.Order(StringComparer.Ordinal)];
        string? some = present.Length > 0 ? present[random.Next(present.Length)] : null;
        int choice = random.Next(10);
        if (some is null || (choice == 0 && present.Length < Names.Length))
        {
            string name = Names.First(n => !model.ContainsKey(n));
            long granularity = random.Next(2) == 0 ? 4096 : 65536;
            bool disabled = random.Next(4) == 0;
            model[name] = new ModelBitmap(new DirtyBitmap(Size, granularity), !disabled);
            await OnBothAsync(sides, "block-dirty-bitmap-add", node => new JsonObject
            {
                ["node"] = node, ["name"] = name, ["granularity"] = granularity, ["disabled"] = disabled,
            });
            return $"add {name} at {granularity}{(disabled ? ", disabled" : "")}";
        }

        switch (choice)
        {
            case 1:
                model.Remove(some);
                await OnBothAsync(sides, "block-dirty-bitmap-remove", node => new JsonObject { ["node"] = node, ["name"] = some });
                return $"remove {some}";
            case 2:
                model[some].Bits.ClearAll();
                await OnBothAsync(sides, "block-dirty-bitmap-clear", node => new JsonObject { ["node"] = node, ["name"] = some });
                return $"clear {some}";
            case 3:
                bool enable = random.Next(2) == 0;
                model[some] = model[some] with { Recording = enable };
                await OnBothAsync(sides, enable ? "block-dirty-bitmap-enable" : "block-dirty-bitmap-disable", node => new JsonObject { ["node"] = node, ["name"] = some });
                return $"{(enable ? "enable" : "disable")} {some}";
            case 4 when present.Length > 1:
                string[] sources = [.. present.Where(n => n != some && random.Next(2) == 0)];
                sources = sources.Length > 0 ? sources : [present.First(n => n != some)];
                foreach (var source in sources)
                {
                    // Each source run marked at the target's granularity: QEMU's sparse merge, exact when
                    // the granularities match, a superset of the source when the target is coarser.
                    foreach (var (offset, length) in model[source].Bits.DirtyRuns())
                    {
                        model[some].Bits.Set(offset, length);
                    }
                }

                await OnBothAsync(sides, "block-dirty-bitmap-merge", node => new JsonObject
                {
                    ["node"] = node, ["target"] = some, ["bitmaps"] = new JsonArray([.. sources.Select(s => (JsonNode)s)]),
                });
                return $"merge {string.Join('+', sources)} into {some}";
            default:
                return await GuestAsync(random, sides, model);
        }
    }

    /// <summary>A write, write-zeroes or discard at the same seeded place on both sides, marked in every recording model.</summary>
    private static async Task<string> GuestAsync(Random random, Side[] sides, Dictionary<string, ModelBitmap> model)
    {
        uint length = (uint)random.Next(1, 256 << 10);
        long offset = random.NextInt64(0, Size - length + 1);
        int kind = random.Next(4);
        var data = new byte[kind >= 2 ? length : 0];
        random.NextBytes(data);
        foreach (var side in sides)
        {
            await (kind switch
            {
                0 => side.Guest.WriteZeroesAsync(offset, length),
                1 => side.Guest.TrimAsync(offset, length),
                _ => side.Guest.WriteAsync(offset, data),
            });
        }

        foreach (var bitmap in model.Values.Where(b => b.Recording))
        {
            bitmap.Bits.Set(offset, length);
        }

        return $"{(kind switch { 0 => "write-zeroes", 1 => "discard", _ => "write" })} {offset}+{length}";
    }

    private static async Task OnBothAsync(Side[] sides, string command, Func<string, JsonObject> arguments)
    {
        foreach (var side in sides)
        {
            await side.Control.ExecuteAsync(command, arguments(side.Node));
        }
    }

    private sealed record ModelBitmap(DirtyBitmap Bits, bool Recording);

    /// <summary>One server under test: its name in messages, the node its bitmaps are added to, its control and guest connections.</summary>
    private sealed record Side(string Name, string Node, QmpClient Control, NbdClient Guest) : IAsyncDisposable
    {
        public async Task<string> Sha256Async(string bitmap) =>
            (await Control.ExecuteAsync("x-debug-block-dirty-bitmap-sha256", new JsonObject { ["node"] = Node, ["name"] = bitmap }))!["sha256"]!.GetValue<string>();

        public async ValueTask DisposeAsync()
        {
            await Guest.DisposeAsync();
            await Control.DisposeAsync();
        }
    }
}
