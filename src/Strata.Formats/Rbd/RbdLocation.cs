using System.Text;
using Strata.Block;

namespace Strata.Formats.Rbd;

/// <summary>
/// An RBD image's address as QEMU spells it after <c>rbd:</c> (block/rbd.c, qemu_rbd_parse_filename):
/// <c>POOL/[NAMESPACE/]IMAGE[@SNAP][:conf=PATH][:id=USER][:KEY=VALUE…]</c>. A backslash escapes the
/// next character (a ':' in a path). Other keys are Ceph configuration options, set on the cluster
/// connection as QEMU does (rados_conf_set), so <c>:rbd_cache_max_dirty=0</c> works the same;
/// rbd_cache itself follows the drive's cache mode, which is set after them (<see cref="RadosCluster.Connect"/>).
/// </summary>
internal sealed record RbdLocation(string Pool, string? Namespace, string Image, string? Snapshot, string? Conf, string? User,
    IReadOnlyList<KeyValuePair<string, string>> Options)
{
    /// <summary>What identifies the cluster connection: images with equal keys share one.</summary>
    public string ClusterKey => $"{Conf}\n{User}\n{string.Join("\n", Options.Select(o => o.Key + "=" + o.Value))}";

    /// <summary>The image's name for messages: pool/[namespace/]image[@snap].</summary>
    public string Name => $"{Pool}/{(Namespace is null ? "" : Namespace + "/")}{Image}{(Snapshot is null ? "" : "@" + Snapshot)}";

    /// <summary>Parses <paramref name="target"/> (what follows <c>rbd:</c>); one-line error when it is no RBD address.</summary>
    public static RbdLocation Parse(string target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var parts = Split(target, ':');
        var path = Split(parts[0], '@');
        if (path.Count > 2)
        {
            throw Bad(target, "more than one '@'");
        }

        var names = Split(path[0], '/').ConvertAll(Unescape);
        if (names.Count is < 2 or > 3 || names.Any(n => n.Length == 0))
        {
            throw Bad(target, "expected POOL/IMAGE or POOL/NAMESPACE/IMAGE");
        }

        string? snapshot = path.Count == 2 ? Unescape(path[1]) : null;
        if (snapshot is { Length: 0 })
        {
            throw Bad(target, "an empty snapshot name");
        }

        string? conf = null;
        string? user = null;
        var options = new List<KeyValuePair<string, string>>();
        foreach (string option in parts.Skip(1))
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw Bad(target, $"option '{option}' is not KEY=VALUE");
            }

            string key = Unescape(option[..eq]);
            string value = Unescape(option[(eq + 1)..]);
            switch (key)
            {
                case "conf":
                    conf = value;
                    break;
                case "id":
                    user = value;
                    break;
                default:
                    options.Add(new(key, value));
                    break;
            }
        }

        return new RbdLocation(names[0], names.Count == 3 ? names[1] : null, names[^1], snapshot, conf, user, options);
    }

    private static BlockException Bad(string target, string why) =>
        BlockException.Invalid($"'rbd:{target}' is no RBD image ({why}): use rbd:POOL/[NAMESPACE/]IMAGE[@SNAP][:conf=PATH][:id=USER]");

    /// <summary>Splits at every unescaped <paramref name="separator"/>, keeping escapes for a later split.</summary>
    private static List<string> Split(string text, char separator)
    {
        var pieces = new List<string>();
        var piece = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\\' && i + 1 < text.Length)
            {
                // The escape stays for the inner splits; Unescape removes it from the final pieces.
                piece.Append(c).Append(text[++i]);
            }
            else if (c == separator)
            {
                pieces.Add(piece.ToString());
                piece.Clear();
            }
            else
            {
                piece.Append(c);
            }
        }

        pieces.Add(piece.ToString());
        return pieces;
    }

    private static string Unescape(string text)
    {
        if (!text.Contains('\\', StringComparison.Ordinal))
        {
            return text;
        }

        var plain = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length)
            {
                i++;
            }

            plain.Append(text[i]);
        }

        return plain.ToString();
    }
}
