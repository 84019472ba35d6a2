using System.Runtime.InteropServices;
using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;
using Strata.TestKit;
using static Strata.Block.BlockPermissions;

namespace Strata.Formats.Tests;

/// <summary>
/// QEMU's lock bytes on image files (docs/locking.md). The expected bytes are those QEMU 7.2 takes for
/// the same use of the same image, as strace shows them (F_OFD_SETLK) for qemu-storage-daemon and
/// qemu-img; QEMU's tools are the second party wherever another user of the image is needed.
/// </summary>
public sealed class ImageLockBytesTests
{
    [Fact]
    public void FcntlLockHasTheLayoutOfLinuxStructFlockOnX64AndArm64()
    {
        Assert.Equal(32, Marshal.SizeOf<FcntlLock>());
        Assert.Equal(0, (int)Marshal.OffsetOf<FcntlLock>(nameof(FcntlLock.Type)));
        Assert.Equal(2, (int)Marshal.OffsetOf<FcntlLock>(nameof(FcntlLock.Whence)));
        Assert.Equal(8, (int)Marshal.OffsetOf<FcntlLock>(nameof(FcntlLock.Start)));
        Assert.Equal(16, (int)Marshal.OffsetOf<FcntlLock>(nameof(FcntlLock.Length)));
        Assert.Equal(24, (int)Marshal.OffsetOf<FcntlLock>(nameof(FcntlLock.Pid)));
    }

    public static TheoryData<string, string, long[]> Uses => new()
    {
        // qemu-storage-daemon exporting the image writable / read-only.
        { "qcow2", "writer", [100, 101, 103, 201, 203] },
        { "qcow2", "reader", [100, 201, 203] },
        { "raw", "writer", [100, 101, 201, 203] },
        { "raw", "reader", [100, 201, 203] },

        // qemu-img check / map / compare (reads, shares everything), with and without -U.
        { "qcow2", "reading", [100, 201, 203] },
        { "qcow2", "reading -U", [100] },
        { "raw", "reading", [100] },

        // qemu-img info: no data read, so no permission; qcow2 still guards its header.
        { "qcow2", "info", [201, 203] },
        { "qcow2", "info -U", [] },
        { "raw", "info", [] },
    };

    [Theory]
    [MemberData(nameof(Uses))]
    public async Task EachUseLocksTheBytesQemuLocksForIt(string format, string use, long[] expected)
    {
        using var folder = new TempFolder("lock");
        string image = await ImageAsync(folder, format);
        var (readOnly, permissions, forceShare) = use switch
        {
            "writer" => (false, NodePermissions.Writer, false),
            "reader" => (true, NodePermissions.Reader, false),
            "reading" => (true, new NodePermissions(ConsistentRead, All), false),
            "reading -U" => (true, new NodePermissions(ConsistentRead, All), true),
            "info" => (true, NodePermissions.None, false),
            _ => (true, NodePermissions.None, true),
        };
        await using var node = await ImageOpener.OpenAsync(image, new ImageOpenOptions
        {
            Format = format, ReadOnly = readOnly, Permissions = permissions, ForceShare = forceShare,
        });
        Assert.Equal(expected, LockedBytes(image));
    }

    [Fact]
    public async Task ABackingFileIsLockedForReadingWithWritersForbidden()
    {
        using var folder = new TempFolder("lock");
        var (top, baseImage) = await ChainAsync(folder);
        await using var node = await ImageOpener.OpenAsync(top, new ImageOpenOptions());
        Assert.Equal([100, 101, 103, 201, 203], LockedBytes(top));
        Assert.Equal([100, 201, 203], LockedBytes(baseImage));
    }

    [Fact]
    public async Task AWriterThatStopsWritingKeepsItsReadersAndStillForbidsWriters()
    {
        using var folder = new TempFolder("lock");
        string image = await ImageAsync(folder, "qcow2");
        await using var node = await ImageOpener.OpenAsync(image, new ImageOpenOptions());
        node.SetPermissions(NodePermissions.Writer.ForBacking(), PermissionCheck.Conflicts);
        Assert.Equal([100, 201, 203], LockedBytes(image));
        Processes.Run("qemu-img", "info", image).AssertSuccess();
        Assert.Contains("Failed to get \"write\" lock", Processes.Run("qemu-io", "-c", "write 0 4k", image).Stderr);
    }

    [Fact]
    public async Task AWritableReopenTakesTheLocksOverFromTheReadOnlyOpenWithoutConflictingWithIt()
    {
        using var folder = new TempFolder("lock");
        var (top, baseImage) = await ChainAsync(folder);
        await using var chain = (Qcow2Node)await ImageOpener.OpenAsync(top, new ImageOpenOptions());
        var readOnlyBase = chain.Backing!;

        var writableBase = await ImageOpener.ReopenWritableAsync(readOnlyBase, NodePermissions.Writer.ForBacking(), NodePermissions.Writer, new ImageOpenOptions());
        chain.BackingEdge.Attach(writableBase, owns: true);
        Assert.Equal([100, 100, 101, 101, 103, 103, 201, 201, 203, 203], LockedBytes(baseImage));
        await readOnlyBase.DisposeAsync();
        Assert.Equal([100, 101, 103, 201, 203], LockedBytes(baseImage));
        Assert.Contains("Failed to get \"write\" lock", Processes.Run("qemu-io", "-c", "write 0 4k", baseImage).Stderr);
        await writableBase.WriteAsync(0, new byte[4096]);
    }

    [Fact]
    public async Task AWritableReopenRefusedBecauseAnotherUserReadsChangesNothing()
    {
        using var folder = new TempFolder("lock");
        string image = await ImageAsync(folder, "raw");
        await using var frozen = await ImageOpener.OpenAsync(image, new ImageOpenOptions { ReadOnly = true });
        await using var reader = await ImageOpener.OpenAsync(image, new ImageOpenOptions { ReadOnly = true });

        var e = await Assert.ThrowsAsync<BlockException>(async () =>
            await ImageOpener.ReopenWritableAsync(frozen, NodePermissions.Reader, NodePermissions.Writer, new ImageOpenOptions()));
        Assert.Equal(BlockError.Locked, e.Error);
        Assert.StartsWith($"Failed to get \"write\" lock. Is another process using the image [{image}]?", e.Message);
        Assert.Equal([100, 100, 201, 201, 203, 203], LockedBytes(image));
    }

    [Fact]
    public async Task ALockErrorNamesTheQemuProcessThatHoldsTheImage()
    {
        using var folder = new TempFolder("lock");
        string image = await ImageAsync(folder, "qcow2");
        using var stop = new CancellationTokenSource();
        var holder = Processes.RunAsync("qemu-io", ["-c", "sleep 60000", image], ProcessOptions.Default, stop.Token);
        try
        {
            string file = FileKey(image);
            bool held = false;
            for (int i = 0; i < 200 && !held && !holder.IsCompleted; i++)
            {
                held = File.ReadLines("/proc/locks").Any(l => l.Contains($" {file} ", StringComparison.Ordinal));
                await Task.Delay(held ? 0 : 50);
            }

            Assert.False(holder.IsCompleted, $"qemu-io ended early: {(holder.IsCompleted ? await holder : null)}");
            Assert.True(held, "qemu-io took no lock on the image within 10 s");
            var refused = await Assert.ThrowsAsync<BlockException>(async () => await (await ImageOpener.OpenAsync(image, new ImageOpenOptions())).DisposeAsync());
            Assert.Equal(BlockError.Locked, refused.Error);
            Assert.Matches($"^Could not open '{image}': Failed to get \"write\" lock\\. Is another process using the image \\[{image}\\]\\? \\(qemu-io, pid [0-9]+ holds it\\)$", refused.Message);
        }
        finally
        {
            await StopAsync(stop, holder);
        }
    }

    [Fact]
    public async Task ClosingTheImageDropsItsLocksEvenWhileAProcessStartedMeanwhileRuns()
    {
        using var folder = new TempFolder("lock");
        string image = await ImageAsync(folder, "qcow2");
        using var stop = new CancellationTokenSource();
        var node = await ImageOpener.OpenAsync(image, new ImageOpenOptions());
        var child = Processes.RunAsync("sleep", ["60"], ProcessOptions.Default, stop.Token);
        try
        {
            await node.DisposeAsync();
            Processes.Run("qemu-io", "-c", "write 0 4k", image).AssertSuccess();
        }
        finally
        {
            await StopAsync(stop, child);
        }
    }

    /// <summary>Stops a peer started with <paramref name="stop"/>'s token: the runner kills it with its children and throws <see cref="OperationCanceledException"/>.</summary>
    private static async Task StopAsync(CancellationTokenSource stop, Task<ProcessResult> peer)
    {
        await stop.CancelAsync();
        try
        {
            await peer;
        }
        catch (OperationCanceledException)
        {
        }
    }


    /// <summary>top.qcow2 on disk.qcow2, made by qemu-img.</summary>
    private static async Task<(string Top, string Base)> ChainAsync(TempFolder folder)
    {
        string baseImage = await ImageAsync(folder, "qcow2");
        string top = folder.File("top.qcow2");
        (await Processes.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", baseImage, "-F", "qcow2", top)).AssertSuccess();
        return (top, baseImage);
    }

    private static async Task<string> ImageAsync(TempFolder folder, string format)
    {
        string image = folder.File($"disk.{format}");
        (await Processes.RunAsync("qemu-img", "create", "-q", "-f", format, image, "4M")).AssertSuccess();
        return image;
    }

    /// <summary>The kernel's name of the file in its lock lines: "MAJOR:MINOR:INODE" (hex, hex, decimal).</summary>
    private static string FileKey(string path)
    {
        string[] stat = Processes.Run("stat", "-c", "%d %i", path).AssertSuccess().Stdout.Split(' ', StringSplitOptions.TrimEntries);
        long device = long.Parse(stat[0]);
        return $"{(device >> 8) & 0xfff:x2}:{(device & 0xff) | ((device >> 12) & 0xfff00):x2}:{stat[1]}";
    }

    /// <summary>Every byte this process holds a lock on in <paramref name="path"/>, once per open file that holds it, sorted.</summary>
    private static long[] LockedBytes(string path)
    {
        string file = FileKey(path);
        var bytes = new List<long>();
        foreach (string info in Directory.EnumerateFiles("/proc/self/fdinfo"))
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(info);
            }
            catch (IOException)
            {
                continue;
            }

            foreach (string line in lines)
            {
                string[] f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (f.Length >= 9 && f[0] == "lock:" && f[2] == "OFDLCK" && f[6] == file)
                {
                    for (long b = long.Parse(f[7]); b <= long.Parse(f[8]); b++)
                    {
                        bytes.Add(b);
                    }
                }
            }
        }

        return [.. bytes.Order()];
    }
}
