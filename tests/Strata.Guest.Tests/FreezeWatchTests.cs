using System.Diagnostics;
using Strata.TestKit;

namespace Strata.Guest.Tests;

/// <summary>The daemon's end of the freeze watch tells the watch process each socket once, in order, however the watch was started.</summary>
public sealed class FreezeWatchTests
{
    // The watch here is bash (dash takes one-digit descriptors only) copying its link (the descriptor after --fd, $2) into a file:
    // what the real watch would read, line by line.
    private static string CopyLinkTo(string file) => $"exec cat <&\"$2\" > '{file}'";

    [Fact]
    public async Task TheFirstArmStartsTheWatchAndTellsItTheSocketOnce()
    {
        using var dir = new TempFolder("fw");
        string heard = dir.File("heard");
        using (var watch = new FreezeWatch("bash", ["-c", CopyLinkTo(heard), "watch"]))
        {
            watch.Arm("/run/vm0.sock", null, TimeSpan.FromSeconds(9));
            watch.Lease("/run/vm0.sock", TimeSpan.FromSeconds(2));
            watch.Disarm("/run/vm0.sock");
            watch.Arm("/run/vm1.sock", null, TimeSpan.FromMilliseconds(1500.2));
        }

        Assert.Equal(["arm 9000 - /run/vm0.sock", "lease 2000 /run/vm0.sock", "disarm /run/vm0.sock", "arm 1501 - /run/vm1.sock"],
            await ReadWhenClosedAsync(heard));
    }

    [Fact]
    public async Task AWatchThatDiedIsStartedAgainAndToldWhatIsStillArmed()
    {
        using var dir = new TempFolder("fw");
        string first = dir.File("first"), second = dir.File("second");

        // The first watch reads one line and exits; the second one keeps reading.
        string script = $"if [ -e '{first}' ]; then {CopyLinkTo(second)}; else head -n 1 <&\"$2\" > '{first}'; fi";
        using (var watch = new FreezeWatch("bash", ["-c", script, "watch"]))
        {
            watch.Arm("/run/vm0.sock", null, TimeSpan.FromHours(1));
            await WaitUntilAsync(() => File.Exists(first) && new FileInfo(first).Length > 0);
            await Task.Delay(200); // the first watch has exited after its one line
            watch.Arm("/run/vm1.sock", null, TimeSpan.FromHours(1));
        }

        Assert.Equal(["arm 3600000 - /run/vm0.sock"], await ReadWhenClosedAsync(first));
        string[] replayed = await ReadWhenClosedAsync(second);
        Assert.Equal(2, replayed.Length);
        Assert.Matches("^arm 3[0-9]{6} - /run/vm0.sock$", replayed[0]);
        Assert.Equal("arm 3600000 - /run/vm1.sock", replayed[1]);
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
