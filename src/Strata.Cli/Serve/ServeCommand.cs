using System.CommandLine;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Strata.Block;
using Strata.Daemon;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;

namespace Strata.Cli.Serve;

/// <summary>`strata serve …`: the daemon that exports drives over NBD (like qemu-storage-daemon).</summary>
public static class ServeCommand
{
    public static Command Build()
    {
        var drive = new Option<string[]>("--drive")
        {
            Description = $"id=NAME,file=PATH[,format={string.Join('|', Img.ImgContext.Drivers.Formats.Select(f => f.Name))}][,readonly=on][,cache=writeback|none][,werror=enospc|stop|report][,rerror=report|stop]; repeatable, exported as NAME. werror/rerror: what a failed guest write/read does, as QEMU's -drive (default werror=enospc, rerror=report): report fails the request; stop holds it and stops the daemon until 'cont' runs it again (docs/serve.md)",
            AllowMultipleArgumentsPerToken = false,
        };
        var bitmap = new Option<string[]>("--bitmap")
        {
            Description = "drive=ID,file=PATH[,name=NAME]: the drive tracks writes into the dirty_bitmap file PATH from the start (created when missing); repeatable",
            AllowMultipleArgumentsPerToken = false,
        };
        var checkpoint = new Option<int>("--bitmap-checkpoint")
        {
            Description = "seconds between writes of the bitmap files' bits (after a crash, writes since the last one are recovered per 64 MiB region); 0: never",
            DefaultValueFactory = _ => 30,
        };
        var guest = new Option<string[]>("--guest")
        {
            Description = "id=NAME,socket=PATH,drives=ID[+ID...]: the guest agent (qemu-ga) of the VM writing those drives, at the unix socket of its virtio-serial channel; repeatable (docs/guest.md)",
            AllowMultipleArgumentsPerToken = false,
        };
        var guestLease = new Option<int>("--guest-lease")
        {
            Description = "milliseconds a guest frozen by begin_snapshot stays frozen at most before Strata thaws it",
            DefaultValueFactory = _ => 5000,
        };
        var hda = new Option<string?>("-hda") { Description = "shorthand for --drive id=ide0-hd0,file=FILE" };
        var nbd = new Option<string[]>("--nbd")
        {
            Description = "NBD listening socket: unix:PATH or tcp:HOST:PORT; repeatable (default: unix socket nbd.sock in the runtime folder); 'none': no NBD server until the control command nbd-server-start",
            AllowMultipleArgumentsPerToken = false,
        };
        var qmp = new Option<string[]>("--qmp")
        {
            Description = "control socket (QMP wire format): unix:PATH; repeatable (default: qmp.sock in the runtime folder)",
            AllowMultipleArgumentsPerToken = false,
        };
        var paused = new Option<bool>("-S") { Description = "hold guest I/O until the control command 'cont'" };
        var pidFile = new Option<string?>("--pidfile") { Description = "write the daemon's process id to this file" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "log connections, options and errors to stderr" };
        var maxConnections = new Option<int>("--max-connections") { Description = "NBD connections accepted at once", DefaultValueFactory = _ => 100 };
        var handshakeTimeout = new Option<int>("--handshake-timeout") { Description = "seconds a client may take to finish the NBD handshake", DefaultValueFactory = _ => 10 };
        var evictIdleAfter = new Option<int>("--evict-idle-after") { Description = "at --max-connections, a new NBD client takes the place of a connection idle this many seconds", DefaultValueFactory = _ => 5 };
        var pollMaxNs = new Option<int>("--poll-max-ns")
        {
            Description = "longest an NBD connection polls its socket before blocking for the next request (adaptive, as QEMU's IOThread poll-max-ns); 0 never polls",
            DefaultValueFactory = _ => 64_000,
        };

        var command = new Command("serve", "Serve disk images to guests over NBD (like qemu-storage-daemon).")
        {
            drive, hda, bitmap, checkpoint, guest, guestLease, nbd, qmp, paused, pidFile, verbose, maxConnections, handshakeTimeout, evictIdleAfter, pollMaxNs,
        };
        command.SetAction(result =>
        {
            try
            {
                var options = BuildOptions(
                    result.GetValue(drive) ?? [], result.GetValue(hda), result.GetValue(nbd) ?? [], result.GetValue(qmp) ?? [],
                    result.GetValue(paused), result.GetValue(pidFile), result.GetValue(verbose),
                    result.GetValue(maxConnections), result.GetValue(handshakeTimeout), result.GetValue(evictIdleAfter), result.GetValue(pollMaxNs))
                    with
                    {
                        Bitmaps = [.. (result.GetValue(bitmap) ?? []).Select(BitmapSpec.Parse)],
                        BitmapCheckpointInterval = CheckpointInterval(result.GetValue(checkpoint)),
                        Guests = [.. (result.GetValue(guest) ?? []).Select(GuestSpec.Parse)],
                        GuestChannel = new Strata.Guest.GuestChannelOptions { Lease = GuestLease(result.GetValue(guestLease)) },
                        FreezeWatch = GuestWatchCommand.ForThisProgram(),
                    };
                return RunAsync(options).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is FormatException or ArgumentException or IOException or SocketException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"strata serve: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    private static TimeSpan GuestLease(int milliseconds) => milliseconds > 0
        ? TimeSpan.FromMilliseconds(milliseconds)
        : throw new ArgumentException("--guest-lease must be a positive number of milliseconds");

    private static TimeSpan CheckpointInterval(int seconds) => seconds switch
    {
        0 => Timeout.InfiniteTimeSpan,
        > 0 => TimeSpan.FromSeconds(seconds),
        _ => throw new ArgumentException("--bitmap-checkpoint must be 0 (never) or a number of seconds"),
    };

    private static DaemonOptions BuildOptions(string[] drives, string? hda, string[] nbd, string[] qmp, bool paused, string? pidFile,
        bool verbose, int maxConnections, int handshakeTimeout, int evictIdleAfter, int pollMaxNs)
    {
        var specs = new List<DriveSpec>();
        if (hda is not null)
        {
            specs.Add(new DriveSpec(DriveSpec.HdaId, hda));
        }

        specs.AddRange(drives.Select(d => DriveSpec.Parse(d)));
        if (specs.Count == 0)
        {
            throw new ArgumentException("no drive to serve: give -hda FILE or --drive id=NAME,file=PATH");
        }

        if (maxConnections < 1 || handshakeTimeout < 1 || evictIdleAfter < 1)
        {
            throw new ArgumentException("--max-connections, --handshake-timeout and --evict-idle-after must be positive");
        }

        if (pollMaxNs < 0)
        {
            throw new ArgumentException("--poll-max-ns must be 0 (never poll) or a number of nanoseconds");
        }

        string folder = SocketDefaults.Directory();
        var nbdEndpoints = nbd is ["none"] ? []
            : nbd.Length > 0 ? nbd.Select(NbdEndpoint.Parse).ToList()
            : [NbdEndpoint.Unix(Path.Combine(folder, SocketDefaults.NbdSocketName))];
        var qmpEndpoints = qmp.Length > 0 ? qmp.Select(ParseControlEndpoint).ToList() : [NbdEndpoint.Unix(Path.Combine(folder, SocketDefaults.QmpSocketName))];
        Action<string>? log = verbose ? line => Console.Error.WriteLine($"strata: {line}") : null;
        return new DaemonOptions
        {
            Drives = specs,
            NbdEndpoints = nbdEndpoints,
            QmpEndpoints = qmpEndpoints,
            StartPaused = paused,
            PidFile = pidFile is null ? null : Path.GetFullPath(pidFile),
            Log = log,
            Nbd = new NbdServerOptions
            {
                MaxConnections = maxConnections, HandshakeTimeout = TimeSpan.FromSeconds(handshakeTimeout), EvictIdleAfter = TimeSpan.FromSeconds(evictIdleAfter),
                PollMax = TimeSpan.FromTicks(pollMaxNs / 100),
            },
        };
    }

    /// <summary>
    /// --qmp takes unix:PATH only: whoever reaches the control socket can stop the daemon and create
    /// files, so it is never offered on a network (the unix socket's file mode guards it).
    /// </summary>
    private static NbdEndpoint ParseControlEndpoint(string text) => text.StartsWith("unix:", StringComparison.Ordinal)
        ? NbdEndpoint.Parse(text)
        : throw new FormatException($"--qmp '{text}': the control socket is unix:PATH only");

    private static async Task<int> RunAsync(DaemonOptions options)
    {
        await using var daemon = new StorageDaemon(options);
        // SIGHUP stops the daemon as SIGTERM and SIGINT do, as QEMU's tools handle it (os-posix.c,
        // os_setup_signal_handling); a daemon started under nohup keeps ignoring it.
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Stop);
        try
        {
            await daemon.StartAsync();
        }
        catch (Strata.Block.BlockException e)
        {
            Console.Error.WriteLine($"strata serve: {e.Message}");
            return 1;
        }

        PrintBanner(daemon);
        await daemon.StopRequested;
        try
        {
            await daemon.StopAsync();
        }
        catch (IOException e)
        {
            // The stop gave up on something (docs/serve.md, "Stopping"): say what, exit non-zero.
            Console.Error.WriteLine($"strata serve: {e.Message}");
            return 1;
        }

        Console.Out.WriteLine("strata serve: stopped; images flushed and closed");
        return 0;

        void Stop(PosixSignalContext context)
        {
            // Handled here: the daemon stops cleanly instead of the runtime ending the process.
            context.Cancel = true;
            daemon.RequestStop();
        }
    }

    /// <summary>
    /// QEMU's warning for a guessed format, one line: probing trusts the image's content, which the
    /// guest writes. A guessed raw image is guarded (its first sector cannot be made to look like
    /// a format), and a guessed qcow2 one may have been a raw disk whose guest wrote a header.
    /// </summary>
    private static string ProbeWarning(Drive drive) => drive.Root.DriverName == "raw"
        ? $"strata serve: warning: the format of '{drive.File}' was not given and probing guessed raw: writes that would make its first sector look like an image format are refused; give format=raw to lift this"
        : $"strata serve: warning: the format of '{drive.File}' was not given and probing found {drive.Root.DriverName}: probing trusts what a guest may have written; give format={drive.Root.DriverName}";

    private static void PrintBanner(StorageDaemon daemon)
    {
        var options = daemon.Options;
        foreach (var drive in daemon.Drives)
        {
            Console.Out.WriteLine($"strata serve: drive '{drive.Id}': {drive.Root.DriverName} {drive.File}, {drive.Root.Size} bytes{(drive.ReadOnly ? ", read-only" : "")}");
            if (drive.Format is null)
            {
                Console.Error.WriteLine(ProbeWarning(drive));
            }
        }

        foreach (var endpoint in options.NbdEndpoints)
        {
            Console.Out.WriteLine($"strata serve: NBD on {endpoint}");
        }

        foreach (var endpoint in options.QmpEndpoints)
        {
            Console.Out.WriteLine($"strata serve: control (QMP) on {endpoint}");
        }

        if (options.NbdEndpoints.FirstOrDefault(e => e.IsUnix) is { } unix)
        {
            Console.Out.WriteLine($"strata serve: try: nbdinfo 'nbd+unix:///{daemon.Drives[0].Id}?socket={unix.UnixPath}'");
        }

        if (options.StartPaused)
        {
            Console.Out.WriteLine("strata serve: guest I/O held until 'cont' (-S)");
        }

        Console.Out.Flush();
    }
}
