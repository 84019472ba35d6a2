using Strata.Formats;

namespace Strata.Daemon;

/// <summary>
/// One <c>--bitmap drive=ID,file=PATH[,name=NAME]</c>: a dirty_bitmap file the drive tracks from the
/// start, so tracking goes on across a restart (the file's store recovers it after a crash; the
/// drive only reloads it). NAME defaults to the file's base name (t0.dbmp → t0), as set_dirty names it.
/// </summary>
public sealed record BitmapSpec(string Drive, string File, string Name)
{
    /// <summary>The bitmap name set_dirty and --bitmap give a file: its name without the extension.</summary>
    public static string NameOf(string file) => Path.GetFileNameWithoutExtension(file);

    /// <summary>Parses the value of <c>--bitmap</c>; throws <see cref="FormatException"/> with a one-line message.</summary>
    public static BitmapSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string? drive = null, file = null, name = null;
        foreach (string pair in QemuOptionList.Split(text))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new FormatException($"--bitmap '{text}': expected key=value, got '{pair}'");
            }

            string value = pair[(eq + 1)..];
            switch (pair[..eq])
            {
                case "drive":
                    drive = value;
                    break;
                case "file":
                    file = value;
                    break;
                case "name":
                    name = value;
                    break;
                default:
                    throw new FormatException($"--bitmap '{text}': unknown key '{pair[..eq]}' (drive, file, name)");
            }
        }

        if (string.IsNullOrEmpty(drive) || string.IsNullOrEmpty(file))
        {
            throw new FormatException($"--bitmap '{text}': drive=ID and file=PATH are required");
        }

        name ??= NameOf(file);
        if (name.Length == 0)
        {
            throw new FormatException($"--bitmap '{text}': give name=NAME (the file's name gives none)");
        }

        return new BitmapSpec(drive, file, name);
    }
}
