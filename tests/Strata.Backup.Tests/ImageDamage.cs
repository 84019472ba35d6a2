using System.Text.Json;
using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary>Damage done to a backup's image on purpose, for verify to find.</summary>
internal static class ImageDamage
{
    /// <summary>
    /// XORs a byte of a data cluster the qcow2 <paramref name="image"/> itself holds (its backing
    /// file, local or in a store, is not opened); returns the guest offset it belongs to.
    /// </summary>
    public static long FlipDataByte(string image)
    {
        string alone = $$"""json:{"driver":"qcow2","file":{"driver":"file","filename":"{{image}}"},"backing":null}""";
        using var map = JsonDocument.Parse(Processes.Ok("qemu-img", "map", "--output=json", alone));
        var extent = map.RootElement.EnumerateArray().First(e => e.GetProperty("data").GetBoolean() && e.GetProperty("depth").GetInt32() == 0
            && e.TryGetProperty("offset", out _));
        long host = extent.GetProperty("offset").GetInt64();
        using var file = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        var one = new byte[1];
        file.Position = host;
        file.ReadExactly(one);
        one[0] ^= 0xff;
        file.Position = host;
        file.Write(one);
        return extent.GetProperty("start").GetInt64();
    }
}
