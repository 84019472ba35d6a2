using System.CommandLine;
using Strata.Backup;
using Strata.Backup.Stores;
using Strata.Cli.Img;

namespace Strata.Cli.Backup;

/// <summary>`strata backup verify SET [POINT] [--output=json]`: every chunk hash recomputed from the images.</summary>
public static class BackupVerifyCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var set = new Argument<string>("SET") { Description = "the backup set's folder, or s3://BUCKET/PREFIX" };
        var point = new Argument<string?>("POINT") { Description = "one point (its number, or 'last'); default: every point", Arity = ArgumentArity.ZeroOrOne };
        var progress = new Option<bool>("-p") { Description = "show progress" };
        var format = new Option<string?>("--output") { Description = "human (default) or json" };
        var command = new Command("verify", """
            Reads the images of the set, and only them, and hashes every chunk of the disk each point
            restores; compares with the SHA-256 its manifest recorded. Mismatches are listed by
            extent (point, offset, length). A byte changed in any image shows in every point that
            reads it.
            Exit status: 0 every chunk matches; 1 error (the set cannot be read); 2 a mismatch or an
            unreadable point.
            """)
        {
            set, point, progress, format,
        };
        command.SetAction((result, cancellationToken) => BackupCli.RunAsync(error, async () =>
        {
            bool json = OutputFormat.IsJson(result.GetValue(format));
            await using var store = await BackupStores.OpenAsync(result.GetValue(set)!, cancellationToken: cancellationToken);
            var backupSet = store.Set;
            var points = result.GetValue(point) is { } name ? [backupSet.Find(name)] : backupSet.Points;
            long total = Math.Max(1, points.Sum(p => p.Size));
            var reports = new List<VerifyReport>();
            await BackupCli.ProgressAsync(output, error, result.GetValue(progress) && !json, "verify", async percent =>
            {
                long done = 0;
                foreach (var p in points)
                {
                    reports.Add(await BackupVerifier.VerifyAsync(token => store.OpenPointAsync(p, token), p, bytes => percent((done += bytes) * 100.0 / total), cancellationToken));
                }
            });
            Report(reports, json, output);
            return reports.TrueForAll(r => r.Ok) ? BackupCli.Ok : BackupCli.Mismatch;
        }));
        return command;
    }

    private static void Report(List<VerifyReport> reports, bool json, TextWriter output)
    {
        if (json)
        {
            output.WriteLine(OutputFormat.Json(w =>
            {
                w.WriteStartArray();
                foreach (var r in reports)
                {
                    w.WriteStartObject();
                    w.WriteNumber("point", r.Point);
                    w.WriteBoolean("ok", r.Ok);
                    w.WriteString("problem", r.Problem);
                    w.WriteStartArray("mismatches");
                    foreach (var m in r.Mismatches)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("start", m.Extent.Offset);
                        w.WriteNumber("length", m.Extent.Length);
                        w.WriteString("expected", m.Expected);
                        w.WriteString("actual", m.Actual);
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }));
            return;
        }

        foreach (var r in reports)
        {
            output.WriteLine(r.Problem is not null ? $"point {r.Point}: cannot be read: {r.Problem}"
                : r.Ok ? $"point {r.Point}: ok" : $"point {r.Point}: {r.Mismatches.Count} chunk(s) differ");
            foreach (var m in r.Mismatches)
            {
                output.WriteLine($"    mismatch at {m.Extent.Offset} length {m.Extent.Length} (0x{m.Extent.Offset:x} + 0x{m.Extent.Length:x})");
            }
        }
    }
}
