namespace Strata.Bench;

/// <summary>Images full of data, so that no tool can take a shortcut through holes.</summary>
internal static class DataFile
{
    /// <summary>Writes <paramref name="size"/> bytes of non-zero data (a repeated random MiB) to a new file.</summary>
    public static void Fill(string path, long size)
    {
        var chunk = new byte[1 << 20];
        new Random(1).NextBytes(chunk);
        using var file = File.OpenHandle(path, FileMode.Create, FileAccess.Write);
        for (long offset = 0; offset < size; offset += chunk.Length)
        {
            RandomAccess.Write(file, chunk.AsSpan(0, (int)Math.Min(chunk.Length, size - offset)), offset);
        }
    }
}
