using Strata.Block;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>A guest with 512-byte sectors (qemu-io over NBD) on a drive that takes only 4 KiB blocks.</summary>
public sealed class NbdPaddingTests
{
    private const int Size = 1 << 20;

    [Fact]
    public async Task QemuIoSectorRequestsInFlightTogetherOverA4KiBAlignedDriveLoseNothing()
    {
        using var folder = new TempFolder();
        var memory = new MemoryNode(Size);
        var server = new NbdServer(new SingleExportCatalog(new NbdExport("disk", new RequestGate(new AlignedNode(memory)))));
        await using (server)
        {
            string socket = folder.File("nbd.sock");
            server.Listen(NbdEndpoint.Unix(socket));
            var commands = new List<string>();
            for (int sector = 0; sector < 16; sector++)
            {
                // Sixteen sectors of two blocks, all in flight at once, each with its own pattern.
                commands.AddRange(["-c", $"aio_write -P 0x{0x40 + sector:x2} {4096 + (sector * 512)} 512"]);
            }

            commands.AddRange(["-c", "aio_flush", "-c", "write -z 12800 1536", "-c", "discard 20992 9216"]);
            for (int sector = 0; sector < 16; sector++)
            {
                commands.AddRange(["-c", $"read -P 0x{0x40 + sector:x2} {4096 + (sector * 512)} 512"]);
            }

            commands.AddRange(["-c", "read -P 0 12800 1536", "-c", "read -P 0 0 4096"]);
            string output = await Processes.OkAsync("qemu-io", ["-f", "raw", .. commands, $"nbd+unix:///disk?socket={socket}"]);
            Assert.DoesNotContain("Pattern verification failed", output);
            Assert.DoesNotContain("error", output, StringComparison.OrdinalIgnoreCase);
        }

        var whole = memory.ToArray();
        for (int sector = 0; sector < 16; sector++)
        {
            Assert.True(whole.AsSpan(4096 + (sector * 512), 512).IndexOfAnyExcept((byte)(0x40 + sector)) < 0, $"sector {sector} lost its write");
        }
    }
}
