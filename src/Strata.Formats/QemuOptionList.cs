using System.Text;

namespace Strata.Formats;

/// <summary>QEMU's option-string spelling, shared by <c>-o</c> and <c>--drive</c>: comma-separated, ",," is a literal comma.</summary>
public static class QemuOptionList
{
    /// <summary>Splits at single commas; empty parts are kept (callers decide whether they are errors).</summary>
    public static List<string> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = new List<string>();
        var current = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == ',')
            {
                if (i + 1 < text.Length && text[i + 1] == ',')
                {
                    current.Append(',');
                    i++;
                    continue;
                }

                parts.Add(current.ToString());
                current.Clear();
                continue;
            }

            current.Append(text[i]);
        }

        parts.Add(current.ToString());
        return parts;
    }

    /// <summary>
    /// QEMU's on/off spelling, the one parser for every switch (<c>-o</c> and <c>--drive</c>):
    /// on/true/yes and off/false/no; callers word the error for anything else.
    /// </summary>
    public static bool TryParseSwitch(string value, out bool result)
    {
        switch (value)
        {
            case "on" or "true" or "yes":
                result = true;
                return true;
            case "off" or "false" or "no":
                result = false;
                return true;
            default:
                result = false;
                return false;
        }
    }
}
