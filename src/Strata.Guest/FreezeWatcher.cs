namespace Strata.Guest;

/// <summary>
/// The watch process's work (<c>strata guest-watch</c>): keeps the set of armed guest sockets from
/// the lines on its standard input (<see cref="FreezeWatch"/>) and, at end of file, thaws each one
/// still armed: connect, sync, guest-fsfreeze-thaw, retried for <see cref="GiveUpAfter"/> while the
/// socket does not answer (a VM being restarted). An empty set at end of file is a clean stop.
/// </summary>
public sealed class FreezeWatcher(TextWriter log)
{
    public TimeSpan GiveUpAfter { get; init; } = TimeSpan.FromSeconds(60);

    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    public GuestAgentOptions Agent { get; init; } = new();

    /// <summary>Reads <paramref name="input"/> to its end, then thaws what is armed; the exit status (0: nothing left frozen by us).</summary>
    public async Task<int> RunAsync(TextReader input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        var armed = new List<string>();
        while (await input.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("arm ", StringComparison.Ordinal))
            {
                armed.Add(line[4..]);
            }
            else if (line.StartsWith("disarm ", StringComparison.Ordinal))
            {
                armed.Remove(line[7..]);
            }
        }

        int failed = 0;
        foreach (string socket in armed.Distinct())
        {
            log.WriteLine($"strata guest-watch: the daemon ended with {socket} frozen; thawing it");
            if (!await ThawAsync(socket, cancellationToken))
            {
                failed++;
            }
        }

        return failed == 0 ? 0 : 1;
    }

    private async Task<bool> ThawAsync(string socket, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + GiveUpAfter;
        string last = "";
        while (true)
        {
            try
            {
                await using var client = await GuestAgentClient.ConnectAsync(socket, Agent, cancellationToken);
                int count = await client.ThawAsync(cancellationToken);
                log.WriteLine($"strata guest-watch: {socket}: {count} file system{(count == 1 ? "" : "s")} thawed");
                return true;
            }
            catch (GuestAgentException e)
            {
                last = e.Message;
            }

            if (DateTime.UtcNow >= deadline)
            {
                log.WriteLine($"strata guest-watch: {socket}: could not thaw within {GiveUpAfter.TotalSeconds:0} s: {last}");
                return false;
            }

            await Task.Delay(RetryDelay, cancellationToken);
        }
    }
}
