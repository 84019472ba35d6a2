using System.CommandLine;

namespace Strata.Cli.Backup;

/// <summary>`strata backup create|verify|restore|list`: backup sets (docs/backup.md).</summary>
public static class BackupCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var command = new Command("backup", """
            Full and incremental backups of a disk into a backup set: a folder of qcow2 images, each
            backed by the one before (relative names), and a JSON manifest per point with a SHA-256
            per chunk of the disk it restores. Plain qemu-img restores any point:
                qemu-img convert -O raw SET/0003.qcow2 disk.img
            Subcommands: create, verify, restore, list ('strata backup SUBCOMMAND --help').
            Exit status: 0 success; 1 error (one line on stderr); 2 verify found a mismatch.
            """)
        {
            BackupCreateCommand.Build(output, error),
            BackupVerifyCommand.Build(output, error),
            BackupRestoreCommand.Build(output, error),
            BackupListCommand.Build(output, error),
        };
        return command;
    }
}
