using System.Text.Json;
using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary>The backup flows end to end with the built strata: the seed's script, and live backups of a drive over several rounds.</summary>
public sealed class BackupWorkflowTests
{
    [Fact]
    public async Task TheBackupWorkflowScriptRestoresEveryPointEqualToTheFrozenImage()
    {
        using var folder = new TempFolder("bwork");
        string script = Path.Combine(Repository.Root, "examples", "backup-workflow.sh");
        string wrapper = folder.File("strata");
        await File.WriteAllTextAsync(wrapper, $"#!/bin/sh\nexec '{Processes.DotnetHost()}' '{Processes.StrataDll}' \"$@\"\n");
        Processes.Run("chmod", "+x", wrapper).AssertSuccess();

        var result = await Processes.RunAsync("env", [$"STRATA={wrapper}", "bash", script, folder.File("work")], new ProcessOptions { Timeout = TimeSpan.FromMinutes(5) });

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("backup workflow: OK", result.Stdout);
    }

    [Fact]
    public async Task LiveBackupsOfADriveOverSeveralRoundsRestoreTheDiskOfEachRound()
    {
        int seed = Workload.NewSeed();
        const long size = 64 << 20;
        using var folder = new TempFolder("bdrive");
        string disk = folder.File("disk.img");
        Processes.Ok("qemu-img", "create", "-f", "raw", disk, $"{size}");
        await using var daemon = ServeProcess.Start(folder.Path, null, "--drive", $"id=d0,file={disk},format=raw",
            "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{folder.File("qmp.sock")}");
        await daemon.WaitForFileAsync(folder.File("qmp.sock"));
        await daemon.WaitForFileAsync(folder.File("nbd.sock"));
        var model = new byte[size];
        var random = new Random(seed);
        string set = folder.File("set");
        for (int round = 0; round < 4; round++)
        {
            var commands = new List<string>();
            for (int i = 0; i < 12; i++)
            {
                int length = random.Next(1, 64) * 4096;
                long offset = random.NextInt64(0, (size - length) / 512) * 512;
                byte pattern = (byte)random.Next(1, 256);
                bool zero = random.Next(5) == 0;
                commands.Add(zero ? $"write -z {offset} {length}" : $"write -P {pattern} {offset} {length}");
                model.AsSpan((int)offset, length).Fill(zero ? (byte)0 : pattern);
            }

            Processes.Run("qemu-io", ["-f", "raw", $"nbd+unix:///d0?socket={folder.File("nbd.sock")}", .. commands.SelectMany(c => new[] { "-c", c })]).AssertSuccess();
            await File.WriteAllBytesAsync(folder.File($"model{round}.img"), model);

            var made = await Processes.StrataAsync(["backup", "create", set, "--drive", "d0", "--qmp", folder.File("qmp.sock"), "--output=json"]);

            Assert.True(made.ExitCode == 0, $"seed {seed}, round {round}: {made}");
            using var report = JsonDocument.Parse(made.Stdout);
            Assert.Equal(round == 0 ? "full" : "incremental", report.RootElement.GetProperty("kind").GetString());
        }

        for (int round = 0; round < 4; round++)
        {
            string image = Path.Combine(set, $"000{round}.qcow2");
            Processes.Run("qemu-img", "check", "-f", "qcow2", image).AssertSuccess();
            var compare = Processes.Run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, folder.File($"model{round}.img"));
            Assert.True(compare.ExitCode == 0, $"seed {seed}: point {round} differs from the disk of round {round}:\n{compare}");
        }

        Assert.Empty(Directory.GetFiles(Path.Combine(set, "work")));
        Assert.Single(Directory.GetFiles(Path.Combine(set, "bitmaps")));
        (await Processes.StrataAsync(["backup", "verify", set])).AssertSuccess();
    }
}
