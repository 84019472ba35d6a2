using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Strata.Vm.Tests;

/// <summary>
/// What guest/init's writer promises, checked on the host: file w/fI holds the lines
/// "seed S file I line K" for K below 64 + (I*7919 + S) % 512, and complete.log names, in order, every
/// file that was whole and fsynced before its line, with its SHA-256.
/// </summary>
public static class WriterContract
{
    public static string Content(int seed, int file)
    {
        long lines = 64 + ((long)file * 7919 + seed) % 512;
        var text = new StringBuilder();
        for (long k = 0; k < lines; k++)
        {
            text.Append(CultureInfo.InvariantCulture, $"seed {seed} file {file} line {k}\n");
        }

        return text.ToString();
    }

    /// <summary>
    /// Checks a copy of the data disk's files (complete.log and w/ under <paramref name="root"/>): the
    /// log is 1, 2, … N, and each file has the logged checksum and the content the seed makes. Returns N.
    /// </summary>
    public static int Verify(string root, int seed)
    {
        string[] log = File.ReadAllLines(Path.Combine(root, "complete.log"));
        for (int i = 0; i < log.Length; i++)
        {
            string[] fields = log[i].Split(' ');
            int number = i + 1;
            if (fields.Length != 2 || fields[0] != number.ToString(CultureInfo.InvariantCulture))
            {
                throw new InvalidDataException($"complete.log line {number} is '{log[i]}' (seed {seed})");
            }

            byte[] bytes = File.ReadAllBytes(Path.Combine(root, "w", $"f{number}"));
            string sum = Convert.ToHexStringLower(SHA256.HashData(bytes));
            if (sum != fields[1])
            {
                throw new InvalidDataException($"w/f{number}: checksum {sum}, the log says {fields[1]} (seed {seed})");
            }

            if (Encoding.ASCII.GetString(bytes) != Content(seed, number))
            {
                throw new InvalidDataException($"w/f{number} is not what seed {seed} makes");
            }
        }

        return log.Length;
    }
}
