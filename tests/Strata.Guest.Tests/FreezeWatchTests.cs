using System.Diagnostics;
using Strata.TestKit;

namespace Strata.Guest.Tests;

/// <summary>The daemon's end of the freeze watch tells the watch process each socket once, in order, however the watch was started.</summary>
public sealed class FreezeWatchTests
{
    [Fact]
    public async Task TheFirstArmStartsTheWatchAndTellsItTheSocketOnce()
    {
        // The watch here is `cat` into a file: what the real watch would read, line by line.
        using var dir = new TempFolder("fw");
        string heard = dir.File("heard");
        using (var watch = new FreezeWatch("sh", ["-c", $"cat > '{heard}'"]))
        {
            watch.Arm("/run/vm0.sock");
            watch.Disarm("/run/vm0.sock");
            watch.Arm("/run/vm1.sock");
        }

        Assert.Equal(["arm /run/vm0.sock", "disarm /run/vm0.sock", "arm /run/vm1.sock"], await ReadWhenClosedAsync(heard));
    }

    [Fact]
    public async Task AWatchThatDiedIsStartedAgainAndToldWhatIsStillArmed()
    {
        using var dir = new TempFolder("fw");
        string first = dir.File("first"), second = dir.File("second");

        // The first watch reads one line and exits; the second one keeps reading.
        string script = $"if [ -e '{first}' ]; then cat > '{second}'; else head -n 1 > '{first}'; fi";
        using (var watch = new FreezeWatch("sh", ["-c", script]))
        {
            watch.Arm("/run/vm0.sock");
            await WaitUntilAsync(() => File.Exists(first) && new FileInfo(first).Length > 0);
            await Task.Delay(200); // the first watch has exited after its one line
            watch.Arm("/run/vm1.sock");
        }

        Assert.Equal(["arm /run/vm0.sock"], await ReadWhenClosedAsync(first));
        Assert.Equal(["arm /run/vm0.sock", "arm /run/vm1.sock"], await ReadWhenClosedAsync(second));
    }

    private static async Task<string[]> ReadWhenClosedAsync(string path)
    {
        // The watch writes its file until it reads end of input, which disposing gave it; bounded.
        string[] lines = [];
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            lines = File.Exists(path) ? await File.ReadAllLinesAsync(path) : [];
            if (lines.Length > 0)
            {
                await Task.Delay(100);
                string[] again = await File.ReadAllLinesAsync(path);
                if (again.SequenceEqual(lines))
                {
                    return lines;
                }
            }

            await Task.Delay(50);
        }

        return lines;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition() && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }
    }
}
