using Strata.Agent;

// strata-agent: answers the host on a virtio-serial port (normally /dev/virtio-ports/org.qemu.guest_agent.0)
// in qemu-ga's protocol; see GuestAgent for the commands and the self-thaw lease.
AgentOptions options;
try
{
    options = AgentOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"strata-agent: {e.Message}");
    return 2;
}

var log = Console.Error;
var agent = new GuestAgent(new FsFreezer(), new HookRunner(options.Hooks, options.HookTimeout, log), options.Lease, log);
using var stop = new CancellationTokenSource();
AppDomain.CurrentDomain.ProcessExit += (_, _) => agent.ThawOnExit();
var leaseWatch = Task.Run(async () =>
{
    using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
    while (await tick.WaitForNextTickAsync(stop.Token))
    {
        agent.ExpireLease();
    }
});

try
{
    using var port = new AgentPort(options.Port);
    log.WriteLine($"strata-agent: listening on {options.Port}, lease {options.Lease.TotalSeconds:0.#} s");
    port.Serve(agent);
    return 0;
}
catch (IOException e)
{
    log.WriteLine($"strata-agent: {options.Port}: {e.Message}");
    return 1;
}
catch (UnauthorizedAccessException e)
{
    log.WriteLine($"strata-agent: {options.Port}: {e.Message}");
    return 1;
}
finally
{
    agent.ThawOnExit();
    await stop.CancelAsync();
    try
    {
        await leaseWatch;
    }
    catch (OperationCanceledException)
    {
        // The watch ends with the agent.
    }
}
