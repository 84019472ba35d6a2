using System.CommandLine;
using Strata.Backup;
using Strata.Backup.Stores;
using Strata.Cli.Img;

namespace Strata.Cli.Backup;

/// <summary>`strata backup restore SET [POINT] DEST [-O raw|qcow2] [-p]`.</summary>
public static class BackupRestoreCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var args = new Argument<string[]>("SET [POINT] DEST") { Description = "the set (a folder or s3://BUCKET/PREFIX), the point (number or 'last'; default: last), the new image", Arity = new ArgumentArity(2, 3) };
        var format = new Option<string>("-O") { Description = "DEST's format: raw (default) or qcow2", DefaultValueFactory = _ => "raw" };
        var progress = new Option<bool>("-p") { Description = "show progress" };
        var command = new Command("restore", """
            Writes the disk as it was at POINT into DEST, a new image (an existing file is refused).
            The same as 'qemu-img convert -O FMT SET/NNNN.qcow2 DEST'; zero runs are not written.
            Exit status: 0 restored; 1 error (DEST is not left behind).
            """)
        {
            args, format, progress,
        };
        command.SetAction((result, cancellationToken) => BackupCli.RunAsync(error, async () =>
        {
            string[] words = result.GetValue(args)!;
            string fmt = result.GetValue(format)!;
            if (fmt is not ("raw" or "qcow2"))
            {
                throw new CliException($"-O must be raw or qcow2, not '{fmt}'");
            }

            await using var store = await BackupStores.OpenAsync(words[0], cancellationToken: cancellationToken);
            var point = store.Set.Find(words.Length == 3 ? words[1] : null);
            string destination = words[^1];
            await using var source = await store.OpenPointAsync(point, cancellationToken);
            await BackupCli.ProgressAsync(output, error, result.GetValue(progress), "restore", percent =>
                BackupRestore.RestoreAsync(source, destination, fmt, percent, store.ReadParallelism, cancellationToken));
            output.WriteLine($"restored point {point.Point} into {destination} ({fmt})");
            return BackupCli.Ok;
        }));
        return command;
    }
}
