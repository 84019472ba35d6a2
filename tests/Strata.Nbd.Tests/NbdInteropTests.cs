using System.Text.Json;
using Strata.Nbd.Protocol;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>Issue 3 item 5: the real clients (libnbd's tools, QEMU's tools, fio) against strata serve, and qemu-storage-daemon as the reference.</summary>
public sealed class NbdInteropTests
{
    private const long Size = 8 * 1024 * 1024;

    [Fact]
    public async Task NbdinfoListsExportsAndContexts()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        string list = await Processes.OkAsync("nbdinfo", "--list", "--json", $"nbd+unix:///?socket={disk.SocketPath}");
        using var json = JsonDocument.Parse(list);
        var exports = json.RootElement.GetProperty("exports").EnumerateArray().ToList();
        Assert.Equal(["disk", "ro"], exports.Select(e => e.GetProperty("export-name").GetString()));
        var contexts = exports[0].GetProperty("contexts").EnumerateArray().Select(c => c.GetString()).ToList();
        Assert.Contains(NbdWire.BaseAllocation, contexts);
        Assert.Contains(NbdWire.QemuAllocationDepth, contexts);
        Assert.True(exports[1].GetProperty("is_read_only").GetBoolean());
        Assert.False(exports[0].GetProperty("is_read_only").GetBoolean());
        Assert.True(exports[0].GetProperty("can_multi_conn").GetBoolean());
    }

    [Fact]
    public async Task NbdinfoReportsSizeAndMap()
    {
        await using var disk = await ServedDisk.StartAsync(Size, prepare: image => WriteAt(image, 1024 * 1024, 65536));
        Assert.Equal($"{Size}", (await Processes.OkAsync("nbdinfo", "--size", disk.Uri())).Trim());
        string map = await Processes.OkAsync("nbdinfo", "--map", disk.Uri());
        Assert.Equal(
            ["0 1048576 3 hole,zero", "1048576 65536 0 data", $"1114112 {Size - 1114112} 3 hole,zero"],
            Lines(map));
        string depth = await Processes.OkAsync("nbdinfo", "--map=qemu:allocation-depth", disk.Uri());
        Assert.Equal([$"0 {Size} 1 local"], Lines(depth));
    }

    [Fact]
    public async Task NbdcopyCopiesIntoAndOutOfTheExport()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        string source = disk.Folder.File("source.img");
        await File.WriteAllBytesAsync(source, NbdServerTests.Pattern((int)Size, 11));
        await Processes.OkAsync("nbdcopy", source, disk.Uri());
        string back = disk.Folder.File("back.img");
        await Processes.OkAsync("nbdcopy", disk.Uri(), back);
        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(back));
        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(disk.ImagePath));
    }

    [Fact]
    public async Task QemuIoWritesAndReadsPatterns()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        string output = await Processes.OkAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0x5a 0 1M", "-c", "write -z 4k 8k", "-c", "discard 512k 64k", "-c", "write -P 0x11 8128k 64k",
            "-c", "read -P 0x5a 0 4k", "-c", "read -P 0 4k 8k", "-c", "read -P 0x5a 12k 500k", "-c", "read -P 0x11 8128k 64k", "-c", "flush",
            disk.Uri());
        Assert.DoesNotContain("Pattern verification failed", output);
        Assert.DoesNotContain("error", output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task QemuImgConvertCompareAndMapMatchQemuStorageDaemon()
    {
        await using var disk = await ServedDisk.StartAsync(Size, prepare: image =>
        {
            WriteAt(image, 0, 4096);
            WriteAt(image, 3 * 1024 * 1024, 200_000);
            WriteAt(image, Size - 4096, 4096);
        });
        string referenceImage = disk.Folder.File("reference.img");
        await Processes.OkAsync("cp", "--sparse=always", disk.ImagePath, referenceImage);
        using var qsd = await Qsd.ExportRawAsync(referenceImage, disk.Folder.File("qsd.sock"));

        string ours = await Processes.OkAsync("qemu-img", "map", "-f", "raw", "--output=json", disk.Uri());
        string theirs = await Processes.OkAsync("qemu-img", "map", "-f", "raw", "--output=json", qsd.Uri);
        Assert.Equal(WithoutOffsets(theirs), WithoutOffsets(ours));
        Assert.Equal(Lines(await Processes.OkAsync("nbdinfo", "--map", qsd.Uri)), Lines(await Processes.OkAsync("nbdinfo", "--map", disk.Uri())));

        await Processes.OkAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", disk.Uri(), qsd.Uri);
        string converted = disk.Folder.File("converted.qcow2");
        await Processes.OkAsync("qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk.Uri(), converted);
        await Processes.OkAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", converted, referenceImage);

        // And into the export: a qcow2 with data written by qemu-io, converted onto the NBD disk.
        string sourceQcow2 = disk.Folder.File("source.qcow2");
        await Processes.OkAsync("qemu-img", "create", "-f", "qcow2", sourceQcow2, $"{Size}");
        await Processes.OkAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 64k 1M", sourceQcow2);
        await Processes.OkAsync("qemu-img", "convert", "-n", "-f", "qcow2", "-O", "raw", sourceQcow2, disk.Uri());
        await Processes.OkAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", sourceQcow2, disk.Uri());
    }

    [Fact]
    public async Task SameWritesThroughBothServersGiveTheSameBytesAndMaps()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        string referenceImage = disk.Folder.File("reference.img");
        await Processes.OkAsync("truncate", "-s", $"{Size}", referenceImage);
        using var qsd = await Qsd.ExportRawAsync(referenceImage, disk.Folder.File("qsd.sock"));
        string[] commands = ["write -P 0x61 0 256k", "write -z 64k 64k", "discard 128k 64k", "write -P 0x62 5M 1M", "write -z -u 5M 4k", "flush"];
        foreach (string uri in new[] { disk.Uri(), qsd.Uri })
        {
            await Processes.OkAsync("qemu-io", ["-f", "raw", .. commands.SelectMany(c => new[] { "-c", c }), uri]);
        }

        Assert.Equal(await File.ReadAllBytesAsync(referenceImage), await File.ReadAllBytesAsync(disk.ImagePath));
        Assert.Equal(Lines(await Processes.OkAsync("nbdinfo", "--map", qsd.Uri)), Lines(await Processes.OkAsync("nbdinfo", "--map", disk.Uri())));
    }

    [Fact]
    public async Task FioVerifiesRandomWritesAtQueueDepth32()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        var result = await Processes.RunAsync("fio", "--name=verify", "--ioengine=nbd", $"--uri={disk.Uri()}", "--rw=randwrite", "--bs=4k",
            "--iodepth=32", "--size=8M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randseed=1234", "--output-format=json");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.Stdout[result.Stdout.IndexOf('{', StringComparison.Ordinal)..]);
        var job = json.RootElement.GetProperty("jobs")[0];
        Assert.Equal(0, job.GetProperty("error").GetInt32());
        Assert.True(job.GetProperty("read").GetProperty("io_bytes").GetInt64() >= Size, "fio verified less than the whole area");
    }

    [Fact]
    public async Task FioMixedLargeAndSmallRequestsVerify()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        var result = await Processes.RunAsync("fio", "--name=mixed", "--ioengine=nbd", $"--uri={disk.Uri()}", "--rw=randwrite", "--bsrange=512-1M",
            "--iodepth=32", "--size=8M", "--verify=md5", "--do_verify=1", "--verify_fatal=1", "--randseed=99");
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task NbdshMalformedRequestsGetErrorsAndTheConnectionLives()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        string script = $$"""
            import errno
            h.set_strict_mode(0)
            size = h.get_size()
            def expect(err, f):
                try:
                    f()
                except nbd.Error as e:
                    assert e.errno == errno.errorcode[err], (e.errno, e.string)
                    return
                raise AssertionError("no error from the server")
            expect(errno.EINVAL, lambda: h.pread(512, size - 256))
            expect(errno.EINVAL, lambda: h.pread(512, 2**63 + 5))
            expect(errno.ENOSPC, lambda: h.pwrite(b"x" * 512, size - 256))
            expect(errno.EINVAL, lambda: h.pread(512, 0, 0x40))
            expect(errno.EINVAL, lambda: h.flush(nbd.CMD_FLAG_FUA))
            expect(errno.ENOSPC, lambda: h.zero(512, size, 0))
            expect(errno.EINVAL, lambda: h.block_status(0, 0, lambda *a: 0))
            h.pwrite(b"\xaa" * 4096, 8192)
            assert h.pread(4096, 8192) == b"\xaa" * 4096
            print("ok")
            """;
        string output = await Processes.NbdshAsync("--base-allocation", "-u", disk.Uri(), "-c", script);
        Assert.Contains("ok", output);
    }

    [Fact]
    public async Task NbdshWritesToTheReadOnlyExportAreRefusedWithEperm()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        string script = """
            import errno
            h.set_strict_mode(0)
            for f in (lambda: h.pwrite(b"x" * 512, 0), lambda: h.trim(512, 0), lambda: h.zero(512, 0)):
                try:
                    f()
                    raise AssertionError("write accepted")
                except nbd.Error as e:
                    assert e.errno == "EPERM", e.errno
            assert h.pread(512, 0) == bytes(512)
            print("ok")
            """;
        Assert.Contains("ok", await Processes.NbdshAsync("-u", disk.Uri("ro"), "-c", script));
    }

    private static void WriteAt(string image, long offset, int length)
    {
        using var file = new FileStream(image, FileMode.Open, FileAccess.Write);
        file.Position = offset;
        file.Write(NbdServerTests.Pattern(length, (int)(offset % 1000)));
    }

    private static string[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToArray();

    /// <summary>qemu-img map entries without host offsets (both servers' files are separate copies).</summary>
    private static string[] WithoutOffsets(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray().Select(e =>
            $"{e.GetProperty("start")} {e.GetProperty("length")} {e.GetProperty("depth")} {e.GetProperty("present")} {e.GetProperty("zero")} {e.GetProperty("data")}").ToArray();
    }
}
