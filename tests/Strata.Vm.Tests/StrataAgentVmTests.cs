using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Vm.Tests;

/// <summary>The guest agents in the real guest: strata-agent's hooks and self-thaw, and a hung qemu-ga.</summary>
[Collection(GuestVmCollection.Name)]
public sealed class StrataAgentVmTests(GuestBuild build)
{
    [Fact]
    public async Task StrataAgentRunsItsHooksAndThawsByItselfWhenTheHostsSocketIsCutWhileFrozen()
    {
        const int seed = 77;
        using var folder = new TempFolder("vm");
        string disk = folder.File("disk.img");
        Ext4Image.Create(disk, "64M");

        await using (var served = await ServedDisk.StartAsync(folder, disk))
        {
            await using var vm = GuestVm.Start(build, folder, served.NbdSocket, ServedDisk.Export,
                $"strata.role=writer strata.seed={seed} strata.agent=strata-agent strata.lease=2");
            await vm.WaitForCompletedAsync(3);

            int stalledAt;
            await using (var agent = await QgaTestClient.ConnectAsync(vm.AgentSocket))
            {
                Assert.True((await agent.CallAsync("guest-fsfreeze-freeze"))!.GetValue<int>() >= 1);
                await vm.WaitForAsync("strata-guest: hook freeze");
                Assert.Equal("frozen", (await agent.CallAsync("guest-fsfreeze-status"))!.GetValue<string>());
                stalledAt = vm.Completed;
            }

            // The host is gone without a thaw: past the lease the agent thaws, and the writer moves again.
            await vm.WaitForAsync("no command from the host for 2 s while frozen: thawed 1 file systems by itself");
            await vm.WaitForAsync("strata-guest: hook thaw");
            await vm.WaitForCompletedAsync(stalledAt + 2);

            await using (var agent = await QgaTestClient.ConnectAsync(vm.AgentSocket))
            {
                Assert.Equal("thawed", (await agent.CallAsync("guest-fsfreeze-status"))!.GetValue<string>());
                await agent.SendAsync("guest-shutdown");
            }

            Assert.Equal(0, await vm.WaitForExitAsync());
            await served.StopAsync();
        }

        var check = Ext4Image.Check(disk);
        Assert.True(check.ExitCode == 0, $"seed {seed}:\n{check}");
        Ext4Image.Extract(disk, folder.File("final"));
        WriterContract.Verify(folder.File("final"), seed);
        Assert.Equal(["hook freeze", "hook thaw"], File.ReadAllLines(folder.File("final/strata-hooks.log")));
    }

    [Fact]
    public async Task AHungAgentMakesTheDaemonsCallsTimeOutWithAClearErrorAndLeavesTheGuestRunning()
    {
        using var folder = new TempFolder("vm");
        string disk = folder.File("disk.img");
        Ext4Image.Create(disk, "64M");
        await using var served = await ServedDisk.StartAsync(folder, disk, "--guest", $"id=vm0,socket={folder.File("qga.sock")},drives={ServedDisk.Export}");
        await using var vm = GuestVm.Start(build, folder, served.NbdSocket, ServedDisk.Export, "strata.role=writer strata.seed=5 strata.agent=qemu-ga strata.hang_agent=3");
        await vm.WaitForCompletedAsync(2);
        await using var qmp = await QmpClient.ConnectAsync(served.QmpSocket);
        await qmp.ExecuteAsync("x-strata-guest-ping", new JsonObject { ["guest"] = "vm0" });

        // guest/init stops qemu-ga (SIGSTOP): its port stays open and nothing answers.
        await vm.WaitForAsync("strata-guest: agent stopped");
        var ping = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("x-strata-guest-ping", new JsonObject { ["guest"] = "vm0" }));
        Assert.Contains("did not answer within", ping.Message, StringComparison.Ordinal);
        var freeze = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("x-strata-guest-begin-snapshot", new JsonObject { ["guest"] = "vm0" }));
        Assert.Contains("did not answer within", freeze.Message, StringComparison.Ordinal);

        // Nothing was frozen (the agent never read the freeze): the guest's writer goes on, the daemon answers.
        int before = vm.Completed;
        await vm.WaitForCompletedAsync(before + 2);
        Assert.NotNull(await qmp.ExecuteAsync("query-guests"));
    }
}
