using System.CommandLine;
using System.Globalization;
using Strata.Backup;
using Strata.Backup.Stores;
using Strata.Cli.Img;

namespace Strata.Cli.Backup;

/// <summary>`strata backup list SET [--output=json]`.</summary>
public static class BackupListCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var set = new Argument<string>("SET") { Description = "the backup set's folder, or s3://BUCKET/PREFIX" };
        var format = new Option<string?>("--output") { Description = "human (default) or json" };
        var command = new Command("list", """
            Lists the points of the set: number, time, kind, image, bytes copied, source and bitmap.
            Exit status: 0 listed; 1 error.
            """)
        {
            set, format,
        };
        command.SetAction((result, cancellationToken) => BackupCli.RunAsync(error, async () =>
        {
            bool json = OutputFormat.IsJson(result.GetValue(format));
            await using var store = await BackupStores.OpenAsync(result.GetValue(set)!, cancellationToken: cancellationToken);
            var backupSet = store.Set;
            if (DriveJournal.Read(store.OpenDriveState(create: false)) is { } unfinished)
            {
                // Not a point (it has no manifest): said on stderr, so the listing stays what a script parses.
                error.WriteLine(BackupCli.Prefix + $"a live backup of drive '{unfinished.Drive}' did not finish"
                    + (unfinished.Overlay is null ? "" : $" and left the drive on {unfinished.Overlay}") + $": the next backup create --drive {unfinished.Drive} finishes it");
            }

            if (json)
            {
                output.WriteLine(OutputFormat.Json(w =>
                {
                    w.WriteStartArray();
                    foreach (var p in backupSet.Points)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("point", p.Point);
                        w.WriteString("time", p.Time);
                        w.WriteString("kind", p.Kind == BackupKind.Full ? "full" : "incremental");
                        w.WriteString("image", p.Image);
                        w.WriteString("backing", p.Backing);
                        w.WriteNumber("size", p.Size);
                        w.WriteNumber("bytes", p.Extents.Sum(e => e.Length));
                        w.WriteString("source", p.Source.Drive ?? p.Source.Image);
                        w.WriteString("bitmap", p.Bitmap?.File);
                        w.WriteString("fallback", p.Fallback);
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                }));
                return BackupCli.Ok;
            }

            output.WriteLine($"{"Point",-6}{"Time (UTC)",-21}{"Kind",-13}{"Image",-12}{"Bytes",-10}Source");
            foreach (var p in backupSet.Points)
            {
                string time = p.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
                string kind = p.Kind == BackupKind.Full ? "full" : "incremental";
                output.WriteLine($"{p.Point,-6}{time,-21}{kind,-13}{p.Image,-12}{BackupCli.Bytes(p.Extents.Sum(e => e.Length)),-10}{p.Source.Drive ?? p.Source.Image}");
            }

            return BackupCli.Ok;
        }));
        return command;
    }
}
