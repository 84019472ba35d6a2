using System.Text.Json;
using Strata.Block;
using Strata.Guest;

namespace Strata.Daemon.Control;

/// <summary>
/// Guest commands, Strata's own (QEMU leaves the agent to the management layer; docs/guest.md):
/// x-strata-guest-add/-remove, query-guests, x-strata-guest-ping, x-strata-guest-begin-snapshot
/// and -end-snapshot; and the guests' part of a snapshot (<c>x-strata-freeze</c>). A freeze made by
/// begin_snapshot belongs to this control connection: when it closes, the guest is thawed.
/// </summary>
public sealed partial class QmpCommands
{
    // Properties, not fields: the table in QmpCommands.cs reads them while the type initializes.
    private static QmpParameter[] GuestName => [new("guest", QmpType.String)];

    private static QmpParameter[] GuestAddParameters => [new("id", QmpType.String), new("socket", QmpType.String), new("drives", QmpType.Array), new("mountpoints", QmpType.Array)];

    private static QmpParameter[] GuestBegin => [new("guest", QmpType.String), new("lease-ms", QmpType.Integer)];

    /// <summary>Thaws every guest this connection froze with begin_snapshot and did not end (the client went away).</summary>
    public async Task ReleaseGuestsAsync()
    {
        foreach (var guest in _daemon.Guests)
        {
            await guest.ReleaseOwnerAsync(this, "the control client that froze it disconnected");
        }
    }

    private QmpResult AddGuest(QmpArguments args)
    {
        var drives = Strings(args.Array("drives"), "drives");
        var mountpoints = args.OptionalArray("mountpoints") is { } points ? Strings(points, "mountpoints") : [];
        try
        {
            _daemon.AddGuest(GuestSpec.Create(args.String("id"), args.String("socket"), drives, "x-strata-guest-add") with { Mountpoints = mountpoints });
        }
        catch (FormatException e)
        {
            throw new QmpException(e.Message);
        }

        return QmpResult.Empty;
    }

    private static List<string> Strings(JsonElement array, string name)
    {
        var strings = new List<string>();
        foreach (var item in array.EnumerateArray())
        {
            strings.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : throw new QmpException($"Invalid parameter type for '{name}', expected: array of strings"));
        }

        return strings;
    }

    private async Task<QmpResult> RemoveGuestAsync(QmpArguments args)
    {
        await _daemon.RemoveGuestAsync(args.String("id"));
        return QmpResult.Empty;
    }

    private QmpResult QueryGuests()
    {
        var guests = _daemon.Guests;
        return new QmpResult(w =>
        {
            w.WriteStartArray();
            foreach (var guest in guests)
            {
                w.WriteStartObject();
                w.WriteString("id", guest.Id);
                w.WriteString("socket", guest.SocketPath);
                w.WriteStartArray("drives");
                foreach (string drive in guest.Drives)
                {
                    w.WriteStringValue(drive);
                }

                w.WriteEndArray();
                if (guest.Mountpoints.Count > 0)
                {
                    w.WriteStartArray("mountpoints");
                    foreach (string point in guest.Mountpoints)
                    {
                        w.WriteStringValue(point);
                    }

                    w.WriteEndArray();
                }

                w.WriteBoolean("responding", guest.IsResponding);
                if (guest.AgentVersion is { } version)
                {
                    w.WriteString("agent-version", version);
                }

                w.WriteString("state", guest.State.ToString().ToLowerInvariant());
                if (guest.State == GuestFreezeState.Frozen)
                {
                    w.WriteNumber("filesystems", guest.FrozenFileSystems);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    private async Task<QmpResult> GuestPingAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        var guest = _daemon.FindGuest(args.OptionalString("guest"));
        var time = await guest.PingAsync(cancellationToken);
        return new QmpResult(w =>
        {
            w.WriteStartObject();
            w.WriteString("guest", guest.Id);
            w.WriteNumber("time-ms", Math.Round(time.TotalMilliseconds, 3));
            w.WriteEndObject();
        });
    }

    /// <summary>begin_snapshot: freezes the guest, returns when the agent acknowledged, with the count and the lease.</summary>
    private async Task<QmpResult> GuestBeginAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        var guest = _daemon.FindGuest(args.OptionalString("guest"));
        long leaseMs = args.OptionalInt("lease-ms", (long)guest.DefaultLease.TotalMilliseconds);
        if (leaseMs is < 1 or > 3_600_000)
        {
            throw new QmpException("Parameter 'lease-ms' must be between 1 and 3600000");
        }

        var result = await guest.BeginSnapshotAsync(this, TimeSpan.FromMilliseconds(leaseMs), cancellationToken);
        return new QmpResult(w =>
        {
            w.WriteStartObject();
            w.WriteString("guest", result.Guest);
            w.WriteNumber("filesystems", result.FrozenFileSystems);
            w.WriteNumber("freeze-ms", Math.Round(result.FreezeTime.TotalMilliseconds, 3));
            w.WriteNumber("lease-ms", leaseMs);
            w.WriteEndObject();
        });
    }

    /// <summary>end_snapshot: thaws; after an expired lease says so ("expired": true) and thaws nothing.</summary>
    private async Task<QmpResult> GuestEndAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        var guest = _daemon.FindGuest(args.OptionalString("guest"));
        var result = await guest.EndSnapshotAsync(cancellationToken);
        return new QmpResult(w =>
        {
            w.WriteStartObject();
            w.WriteString("guest", result.Guest);
            w.WriteNumber("filesystems", result.ThawedFileSystems);
            w.WriteNumber("frozen-ms", Math.Round(result.FrozenFor.TotalMilliseconds, 3));
            w.WriteBoolean("expired", result.Expired);
            w.WriteEndObject();
        });
    }

    /// <summary>
    /// Holds every guest that writes one of <paramref name="drives"/> for a snapshot, freezing them
    /// when <paramref name="freeze"/> (x-strata-freeze). A consistent snapshot must switch all of a
    /// guest's drives at once, so a guest with a drive left out is refused before anything happens.
    /// On failure every scope already entered is left (and thawed).
    /// </summary>
    private async Task<GuestHold> HoldGuestsAsync(IReadOnlyList<Drive> drives, bool freeze, CancellationToken cancellationToken)
    {
        var guests = _daemon.GuestsOf(drives);
        var hold = new GuestHold();
        if (freeze)
        {
            if (guests.Count == 0)
            {
                hold.Warnings.Add($"no guest writes {string.Join(", ", drives.Select(d => d.Id))}: the snapshot is crash-consistent only");
            }

            foreach (var guest in guests)
            {
                if (guest.Drives.FirstOrDefault(id => drives.All(d => d.Id != id)) is { } missing)
                {
                    throw new QmpException($"guest {guest.Id} also writes drive '{missing}': a consistent snapshot switches all its drives at once; add a snapshot of it");
                }
            }
        }

        try
        {
            foreach (var guest in guests)
            {
                GuestFreezeScope scope;
                try
                {
                    scope = await guest.EnterSnapshotAsync(freeze, cancellationToken);
                }
                catch (GuestAgentException e) when (freeze)
                {
                    // The agent answered but did not freeze as asked (docs/guest.md, "When the agent
                    // fails the freeze"): it was sent a thaw; nothing is switched. A crash-consistent
                    // snapshot is the caller's explicit choice, never a silent fallback.
                    throw new QmpException($"{e.Message}: the consistent snapshot is refused and no drive was switched (without x-strata-freeze the snapshot is taken crash-consistent)");
                }


                hold.Scopes.Add(scope);
                if (scope.Warning is { } warning)
                {
                    hold.Warnings.Add(warning);
                }
            }
        }
        catch
        {
            await hold.ExitAsync();
            throw;
        }

        return hold;
    }
}
