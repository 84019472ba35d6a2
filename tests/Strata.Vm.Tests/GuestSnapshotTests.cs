using Xunit.Abstractions;
using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Vm.Tests;

/// <summary>
/// The seed workflow with a real Linux guest (guest/init's writer, qemu-ga inside) on a disk served
/// by strata: freeze, live snapshot, thaw; the frozen base is a clean file system holding every file
/// the writer had completed; a live merge under the writer; a clean shutdown; a second boot reads
/// every file back.
/// </summary>
[Collection(GuestVmCollection.Name)]
public sealed class GuestSnapshotTests(GuestBuild build, ITestOutputHelper output)
{
    private static readonly TimeSpan JobWait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AFrozenSnapshotOfARunningGuestIsCleanAndHoldsEveryCompletedFileAndTheMergedDiskBootsAgain()
    {
        const int seed = 4242;
        using var folder = new TempFolder("vm");
        string disk = folder.File("disk.img");
        string overlay = folder.File("overlay.qcow2");
        Ext4Image.Create(disk, "64M");

        int finalCount;
        // Strata reaches the guest's agent itself (--guest): the VM's chardev is the server, the
        // daemon connects when it appears.
        await using (var served = await ServedDisk.StartAsync(folder, disk, "--guest", $"id=vm0,socket={folder.File("qga.sock")},drives={ServedDisk.Export}"))
        {
            await using var vm = GuestVm.Start(build, folder, served.NbdSocket, ServedDisk.Export, $"strata.role=writer strata.seed={seed}");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await vm.WaitForAsync("strata-guest: mounted /data");
            output.WriteLine($"boot to the mounted data disk: {clock.Elapsed.TotalSeconds:0.0} s (TCG)");
            await vm.WaitForCompletedAsync(3);
            await using var qmp = await QmpClient.ConnectAsync(served.QmpSocket);

            // Freeze, switch, thaw in one command: every file complete before the freeze is in the base from here on.
            int completedBeforeFreeze = vm.Completed;
            var reply = await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
            {
                ["device"] = ServedDisk.Export, ["snapshot-file"] = overlay, ["format"] = "qcow2", ["x-strata-freeze"] = true,
            });
            var frozen = reply?["guests"]?[0];
            Assert.True(frozen?["guest"]?.GetValue<string>() == "vm0" && frozen["filesystems"]!.GetValue<int>() >= 1,
                $"the snapshot froze no file system of vm0 (seed {seed}): {reply?.ToJsonString()}");
            Assert.Null(reply?["warnings"]);
            output.WriteLine($"consistent snapshot: {reply?["timings"]?.ToJsonString()}");
            var status = await qmp.ExecuteAsync("query-guests");
            Assert.DoesNotContain("\"frozen\": true", status?.ToJsonString() ?? "", StringComparison.Ordinal);

            string copy = folder.File("frozen.img");
            File.Copy(disk, copy);
            var check = Ext4Image.Check(copy);
            Assert.True(check.ExitCode == 0, $"the frozen base is not clean (seed {seed}):\n{check}");
            Ext4Image.Extract(copy, folder.File("frozen"));
            int inBase = WriterContract.Verify(folder.File("frozen"), seed);
            output.WriteLine($"seed {seed}: {completedBeforeFreeze} files complete before the freeze, {inBase} in the frozen base");
            Assert.True(inBase >= completedBeforeFreeze, $"the frozen base has {inBase} files, the writer had completed {completedBeforeFreeze} (seed {seed})");

            // The writer goes on into the overlay, and on through a live merge back into the base.
            await vm.WaitForCompletedAsync(inBase + 3);
            await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = ServedDisk.Export, ["job-id"] = "merge0" });
            await qmp.WaitForEventAsync("BLOCK_JOB_READY", JobWait);
            await vm.WaitForCompletedAsync(vm.Completed + 2);
            await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "merge0" });
            var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", JobWait);
            Assert.Null(completed["data"]?["error"]);
            await vm.WaitForCompletedAsync(vm.Completed + 2);

            // The daemon lets go of the agent's socket (one client at a time), and the test shuts the guest down through it.
            await qmp.ExecuteAsync("x-strata-guest-remove", new JsonObject { ["id"] = "vm0" });
            await using var agent = await QgaTestClient.ConnectAsync(vm.AgentSocket);
            await agent.SendAsync("guest-shutdown");
            await vm.WaitForAsync("strata-guest: unmounted /data");
            Assert.Equal(0, await vm.WaitForExitAsync());
            finalCount = vm.Completed;
            output.WriteLine($"{finalCount} files complete at shutdown, {clock.Elapsed.TotalSeconds:0.0} s after boot");
            await served.StopAsync();
        }

        var final = Ext4Image.Check(disk);
        Assert.True(final.ExitCode == 0, $"the merged disk is not clean after shutdown (seed {seed}):\n{final}");
        Ext4Image.Extract(disk, folder.File("final"));
        Assert.Equal(finalCount, WriterContract.Verify(folder.File("final"), seed));

        // A second boot reads back and checks every file in the guest.
        await using (var served = await ServedDisk.StartAsync(folder, disk))
        {
            await using var vm = GuestVm.Start(build, folder, served.NbdSocket, ServedDisk.Export, $"strata.role=verify strata.seed={seed} strata.agent=none");
            await vm.WaitForAsync($"strata-guest: verified {finalCount} files");
            Assert.Equal(0, await vm.WaitForExitAsync());
            await served.StopAsync();
        }
    }
}
