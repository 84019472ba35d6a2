using System.Globalization;
using System.Text.Json.Nodes;
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
    public async Task AHungAgentMakesTheHostsCallTimeOutWithAClearErrorAndLeavesTheGuestRunning()
    {
        using var folder = new TempFolder("vm");
        string disk = folder.File("disk.img");
        Ext4Image.Create(disk, "64M");
        await using var served = await ServedDisk.StartAsync(folder, disk);
        await using var vm = GuestVm.Start(build, folder, served.NbdSocket, ServedDisk.Export, "strata.role=writer strata.seed=5 strata.agent=qemu-ga");
        await vm.WaitForCompletedAsync(2);
        await using var agent = await QgaTestClient.ConnectAsync(vm.AgentSocket);

        // qemu-ga stops itself (SIGSTOP through guest-exec): it keeps its port open and never answers,
        // often not even this command, as the child's kill may land before the reply is written.
        await agent.SendAsync("guest-exec", new JsonObject
        {
            ["path"] = "/bin/kill",
            ["arg"] = new JsonArray("-STOP", vm.AgentPid.ToString(CultureInfo.InvariantCulture)),
        });
        TimeoutException? hung = null;
        for (int attempt = 0; attempt < 10 && hung is null; attempt++)
        {
            // A first reply may still come (guest-exec's own, or a ping's before the kill lands).
            hung = await Record.ExceptionAsync(() => agent.CallAsync("guest-ping", timeout: TimeSpan.FromSeconds(2))) as TimeoutException;
        }

        Assert.NotNull(hung);
        Assert.Equal("the guest agent did not answer guest-ping within 2 s", hung.Message);
        var resync = await Assert.ThrowsAsync<TimeoutException>(() => agent.SyncAsync(TimeSpan.FromSeconds(2)));
        Assert.Contains("guest-sync-delimited", resync.Message);

        // Nothing was frozen: the guest's writer goes on.
        int before = vm.Completed;
        await vm.WaitForCompletedAsync(before + 2);
    }
}
