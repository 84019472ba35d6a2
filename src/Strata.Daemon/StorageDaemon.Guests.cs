using Strata.Block;
using Strata.Daemon.Control;
using Strata.Guest;

namespace Strata.Daemon;

/// <summary>
/// The daemon's guests (docs/guest.md): one channel per VM agent, tied to the drives the VM writes.
/// A drive belongs to at most one guest, so a consistent snapshot of a drive knows whom to freeze.
/// Stopping the daemon thaws every guest first.
/// </summary>
public sealed partial class StorageDaemon
{
    // Protects _guests (the list; each channel guards its own state).
    private readonly Lock _guestsLock = new();
    private readonly List<GuestChannel> _guests = [];

    public IReadOnlyList<GuestChannel> Guests
    {
        get
        {
            lock (_guestsLock)
            {
                return [.. _guests];
            }
        }
    }

    /// <summary>Adds a guest and starts connecting to its agent; throws <see cref="ArgumentException"/> for an id in use, an unknown drive or one another guest has.</summary>
    public GuestChannel AddGuest(GuestSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        foreach (string drive in spec.Drives)
        {
            _ = FindDrive(drive) ?? throw new ArgumentException($"guest {spec.Id}: no drive has the id '{drive}'");
        }

        var channel = new GuestChannel(spec.Id, spec.Socket, spec.Drives, _options.GuestChannel, _options.FreezeWatch) { Mountpoints = spec.Mountpoints };
        lock (_guestsLock)
        {
            if (_guests.Any(g => g.Id == spec.Id))
            {
                throw new ArgumentException($"a guest with the id '{spec.Id}' exists already");
            }

            if (_guests.FirstOrDefault(g => g.Drives.Intersect(spec.Drives).Any()) is { } other)
            {
                throw new ArgumentException($"guest {spec.Id}: drive '{other.Drives.Intersect(spec.Drives).First()}' belongs to guest {other.Id} already");
            }

            _guests.Add(channel);
        }

        channel.EventRaised += OnGuestEvent;
        channel.Start();
        Log($"guest {spec.Id}: agent at {spec.Socket}, drives {string.Join(", ", spec.Drives)}");
        return channel;
    }

    /// <summary>Removes a guest; refused while it is frozen (end_snapshot first), so a removal never strands a freeze.</summary>
    public async Task RemoveGuestAsync(string id)
    {
        GuestChannel channel;
        lock (_guestsLock)
        {
            channel = _guests.Find(g => g.Id == id) ?? throw new ArgumentException($"no guest has the id '{id}'");
            if (channel.State == GuestFreezeState.Frozen)
            {
                throw new InvalidOperationException($"guest {id} is frozen: end_snapshot first");
            }

            _guests.Remove(channel);
        }

        channel.EventRaised -= OnGuestEvent;
        if (await channel.StopAsync() is { } problem)
        {
            Log(problem);
        }
    }

    /// <summary>The guest <paramref name="id"/>; with none given, the daemon's only guest.</summary>
    public GuestChannel FindGuest(string? id)
    {
        var guests = Guests;
        if (id is null)
        {
            return guests.Count == 1 ? guests[0]
                : throw new ArgumentException(guests.Count == 0 ? "the daemon has no guest (strata serve --guest, or x-strata-guest-add)" : $"the daemon has {guests.Count} guests: name one ({string.Join(", ", guests.Select(g => g.Id))})");
        }

        return guests.FirstOrDefault(g => g.Id == id) ?? throw new ArgumentException($"no guest has the id '{id}'");
    }

    /// <summary>The guests that write any of <paramref name="drives"/>, by id (the order scopes are entered in).</summary>
    public IReadOnlyList<GuestChannel> GuestsOf(IEnumerable<Drive> drives)
    {
        var ids = drives.Select(d => d.Id).ToHashSet();
        return [.. Guests.Where(g => g.Drives.Any(ids.Contains)).OrderBy(g => g.Id, StringComparer.Ordinal)];
    }

    private void StartGuests()
    {
        foreach (var spec in _options.Guests)
        {
            AddGuest(spec);
        }
    }

    /// <summary>Thaws and disconnects every guest, then closes the freeze watch's pipe (it thaws what could not be thawed here). Returns the problems.</summary>
    private async Task<List<string>> StopGuestsAsync()
    {
        var problems = new List<string>();
        foreach (var channel in Guests)
        {
            if (await channel.StopAsync() is { } problem)
            {
                problems.Add(problem);
            }
        }

        (_options.FreezeWatch as IDisposable)?.Dispose();
        return problems;
    }

    /// <summary>A guest's event as a QMP event (GUEST_CONNECTED, GUEST_LOST, GUEST_FROZEN, GUEST_THAWED) and a log line.</summary>
    private void OnGuestEvent(GuestEvent e)
    {
        string name = e.Kind switch
        {
            GuestEventKind.Connected => "GUEST_CONNECTED",
            GuestEventKind.Lost => "GUEST_LOST",
            GuestEventKind.Frozen => "GUEST_FROZEN",
            _ => "GUEST_THAWED",
        };
        Log($"guest {e.Guest}: {name.ToLowerInvariant()}{(e.Count is { } n ? $", {n} file systems" : "")}{(e.Reason is { } r ? $": {r}" : "")}");
        Emit(new QmpEvent(name, w =>
        {
            w.WriteStartObject();
            w.WriteString("guest", e.Guest);
            if (e.Count is { } count)
            {
                w.WriteNumber("filesystems", count);
            }

            if (e.Reason is { } reason)
            {
                w.WriteString("reason", reason);
            }

            w.WriteEndObject();
        }));
    }
}
