using Strata.Block.Bitmaps;
using Strata.Guest;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;

namespace Strata.Daemon;

/// <summary>Everything <c>strata serve</c> was told on its command line.</summary>
public sealed record DaemonOptions
{
    public IReadOnlyList<DriveSpec> Drives { get; init; } = [];

    /// <summary>dirty_bitmap files the drives track from the start (--bitmap).</summary>
    public IReadOnlyList<BitmapSpec> Bitmaps { get; init; } = [];

    /// <summary>Opens and creates dirty_bitmap files for every drive; null: Strata.Formats' own, over the drive's drivers.</summary>
    public IBitmapFiles? BitmapFiles { get; init; }

    /// <summary>
    /// How often the bits of bitmaps kept in dirty_bitmap files are written to their files
    /// (<see cref="Strata.Block.Drive.CheckpointBitmapsAsync"/>): after a crash, recovery is exact up
    /// to the last checkpoint and coarse (whole intent regions) only for writes since. Each
    /// checkpoint holds the guest for one write and flush of the bits. Infinite: never.
    /// </summary>
    public TimeSpan BitmapCheckpointInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The guests whose agents the daemon talks to (--guest; docs/guest.md).</summary>
    public IReadOnlyList<GuestSpec> Guests { get; init; } = [];

    /// <summary>Timeouts, lease and reconnect delays of every guest channel.</summary>
    public GuestChannelOptions GuestChannel { get; init; } = new();

    /// <summary>
    /// What thaws a frozen guest when the daemon dies (docs/guest.md, "A freeze always thaws");
    /// <c>strata serve</c> gives its own <c>strata guest-watch</c>. Null: none, a killed daemon
    /// leaves a frozen guest frozen (in-process tests only).
    /// </summary>
    public IFreezeWatch? FreezeWatch { get; init; }

    public IReadOnlyList<NbdEndpoint> NbdEndpoints { get; init; } = [];

    /// <summary>Control sockets (QMP wire format).</summary>
    public IReadOnlyList<NbdEndpoint> QmpEndpoints { get; init; } = [];

    /// <summary>-S: guest I/O is held from the start until the QMP command <c>cont</c>.</summary>
    public bool StartPaused { get; init; }

    public string? PidFile { get; init; }

    public NbdServerOptions Nbd { get; init; } = new();

    /// <summary>Verbose diagnostics, one line each (-v); null keeps quiet.</summary>
    public Action<string>? Log { get; init; }
}
