using Strata.Formats;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests.ToyDriver;

/// <summary>
/// A driver plugs in by name: a format and a protocol that only this test knows (a toy header over
/// images held in memory) are registered here, and the daemon, its NBD server and QEMU's tools serve
/// and use the disk with no change anywhere else.
/// </summary>
public sealed class ToyDriverTests
{
    private const long DiskSize = 4 << 20;
    private const string Export = "toy0";

    [Theory]
    [InlineData(",format=toy", 1101)]
    [InlineData("", 1102)]
    public async Task AToyFormatOnAMemoryProtocolIsServedOverNbdAndReadsAndWritesAsTheModel(string format, int seed)
    {
        var memory = new MemoryProtocolDriver();
        var drivers = StandardDrivers.Registry.With(new ToyFormatDriver()).With(memory);
        await ImageCreator.CreateAsync(await ImageCreator.PlanAsync(drivers, "mem:disk", ToyFormatDriver.FormatName, DiskSize, null, null, []));

        using var folder = new TempFolder();
        string socket = folder.File("nbd.sock");
        await using var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [DriveSpec.Parse($"id={Export},file=mem:disk{format}", drivers)],
            NbdEndpoints = [NbdEndpoint.Unix(socket)],
        });
        await daemon.StartAsync();
        Assert.Equal(ToyFormatDriver.FormatName, daemon.Drives[0].Root.DriverName);

        var model = new byte[DiskSize];
        var random = new Random(seed);
        var commands = new List<string>();
        for (int i = 0; i < 40; i++)
        {
            long offset = random.NextInt64(DiskSize / 512) * 512;
            int length = (int)Math.Min(DiskSize - offset, random.Next(1, 129) * 512);
            if (random.Next(4) == 0)
            {
                commands.Add(FormattableString.Invariant($"write -z {offset} {length}"));
                model.AsSpan((int)offset, length).Clear();
            }
            else
            {
                byte pattern = (byte)random.Next(1, 256);
                commands.Add(FormattableString.Invariant($"write -P {pattern} {offset} {length}"));
                model.AsSpan((int)offset, length).Fill(pattern);
            }
        }

        string uri = $"nbd+unix:///{Export}?socket={socket}";
        var written = Processes.Run("qemu-io", commands.SelectMany(c => new[] { "-c", c }).Prepend(uri).Prepend("raw").Prepend("-f").ToArray());
        Assert.True(written.ExitCode == 0 && !written.Stdout.Contains("error", StringComparison.OrdinalIgnoreCase), $"seed {seed}: {written}");

        string copy = folder.File("copy.raw");
        Processes.Run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, copy).AssertSuccess();
        byte[] served = await File.ReadAllBytesAsync(copy);
        Assert.True(model.AsSpan().SequenceEqual(served), $"seed {seed}: the disk read over NBD is not the model");

        await daemon.StopAsync();
        byte[] stored = memory.Image("disk").ToArray();
        Assert.True(stored.AsSpan().StartsWith(ToyFormatDriver.Magic), $"seed {seed}: the toy header was overwritten");
        Assert.True(model.AsSpan().SequenceEqual(stored.AsSpan(ToyNode.DataOffset)), $"seed {seed}: the memory image does not hold the model after the header");
    }

    [Fact]
    public void ADriveOfAFormatTheRegistryDoesNotHoldIsRefusedWithOneLine()
    {
        var e = Assert.Throws<FormatException>(() => DriveSpec.Parse($"id=x,file=mem:disk,format={ToyFormatDriver.FormatName}"));
        Assert.Contains($"unknown format '{ToyFormatDriver.FormatName}' (raw, qcow2, dirty_bitmap)", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void TheToyFormatIsListedWhereItIsRegisteredAndNowhereElse()
    {
        var drivers = StandardDrivers.Registry.With(new ToyFormatDriver());
        Assert.Equal("raw, qcow2, dirty_bitmap, toy", drivers.FormatNames);
        Assert.Equal("raw, qcow2, dirty_bitmap", StandardDrivers.Registry.FormatNames);
        Assert.Equal("toy", DriveSpec.Parse("id=x,file=a.img,format=toy", drivers).Format);
    }
}
