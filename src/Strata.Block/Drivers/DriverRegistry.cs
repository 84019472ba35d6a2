using System.Collections.Frozen;

namespace Strata.Block.Drivers;

/// <summary>
/// The format and protocol drivers an opener may use, by name: the one list of what Strata reads.
/// Immutable: <see cref="With(IFormatDriver)"/> gives a new registry, so a test or a plugin adds a
/// driver without changing anyone else's.
/// </summary>
/// <remarks>
/// Names are unique per kind. Every lookup of an unknown name fails with one line that lists what
/// is registered, so the CLI, the daemon and QMP all give the same answer.
/// </remarks>
public sealed class DriverRegistry
{
    /// <summary>The bytes a probe looks at (QEMU's BLOCK_PROBE_BUF_SIZE).</summary>
    public const int ProbeLength = 512;

    private readonly FrozenDictionary<string, IFormatDriver> _formats;
    private readonly FrozenDictionary<string, IProtocolDriver> _protocols;
    private readonly FormatRecognizer? _recognize;

    public DriverRegistry(IEnumerable<IFormatDriver> formats, IEnumerable<IProtocolDriver> protocols, FormatRecognizer? recognize = null)
    {
        ArgumentNullException.ThrowIfNull(formats);
        ArgumentNullException.ThrowIfNull(protocols);
        Formats = [.. formats];
        Protocols = [.. protocols];
        _formats = ByName(Formats, d => d.Name, "format");
        _protocols = ByName(Protocols, d => d.Name, "protocol");
        _recognize = recognize;
    }

    /// <summary>The format drivers, in registration order (the order listings show).</summary>
    public IReadOnlyList<IFormatDriver> Formats { get; }

    public IReadOnlyList<IProtocolDriver> Protocols { get; }

    /// <summary>The format names, comma-separated, for messages and help.</summary>
    public string FormatNames => string.Join(", ", Formats.Select(f => f.Name));

    /// <summary>This registry with one more format driver.</summary>
    public DriverRegistry With(IFormatDriver format) => new([.. Formats, format], Protocols, _recognize);

    /// <summary>This registry with one more protocol driver.</summary>
    public DriverRegistry With(IProtocolDriver protocol) => new(Formats, [.. Protocols, protocol], _recognize);

    public bool HasFormat(string name) => _formats.ContainsKey(name);

    /// <summary>The format driver called <paramref name="name"/>, or a one-line error naming the registered ones.</summary>
    public IFormatDriver Format(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _formats.TryGetValue(name, out var driver) ? driver
            : throw BlockException.Invalid($"Unknown driver '{name}' (supported: {FormatNames})");
    }

    /// <summary>The protocol driver that reaches <paramref name="locator"/>.</summary>
    public IProtocolDriver Protocol(ImageLocator locator)
    {
        ArgumentNullException.ThrowIfNull(locator);
        return _protocols.TryGetValue(locator.Protocol, out var driver) ? driver
            : throw BlockException.NotSupported($"No driver for protocol '{locator.Protocol}' ('{locator}')");
    }

    /// <summary>
    /// Where <paramref name="name"/> says an image lives: <c>protocol:target</c> when the prefix is a
    /// registered protocol other than files, else a local path.
    /// </summary>
    public ImageLocator Locate(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        int colon = name.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0)
        {
            string scheme = name[..colon];
            if (scheme != ImageLocator.FileProtocol && _protocols.ContainsKey(scheme))
            {
                return ImageLocator.ForProtocol(scheme, name[(colon + 1)..]);
            }
        }

        return ImageLocator.ForFile(name);
    }

    /// <summary>
    /// Where a backing name recorded in the image at <paramref name="overlay"/> points: a name that
    /// is a locator of its own as it is, else next to the overlay (<see cref="ImageLocator.Sibling"/>).
    /// </summary>
    public ImageLocator ResolveBacking(ImageLocator overlay, string name)
    {
        ArgumentNullException.ThrowIfNull(overlay);
        var located = Locate(name);
        return located.IsFile ? overlay.Sibling(name) : located;
    }

    /// <summary>As <see cref="ResolveBacking(ImageLocator, string)"/>, for an overlay given by name.</summary>
    public ImageLocator ResolveBacking(string overlay, string name) => ResolveBacking(Locate(overlay), name);

    /// <summary>
    /// Guesses an image's format from its first bytes: the driver whose probe scores highest. When
    /// only a driver that takes any content (raw) answers and the bytes look like a format no driver
    /// here reads, the image is refused rather than taken for raw.
    /// </summary>
    public async ValueTask<IFormatDriver> ProbeAsync(IBlockNode file, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        var start = new byte[(int)Math.Min(file.Size, ProbeLength)];
        await file.ReadAsync(0, start, cancellationToken);
        IFormatDriver? best = null;
        int bestScore = 0;
        foreach (var driver in Formats)
        {
            int score = driver.Probe(start);
            if (score > bestScore)
            {
                (best, bestScore) = (driver, score);
            }
        }

        if (bestScore <= 1 && _recognize?.Invoke(start) is { } other && !HasFormat(other))
        {
            throw BlockException.NotSupported(
                $"'{file.FileName}' looks like a {other} image, which Strata does not read; give its format explicitly (format=raw serves its bytes as they are)");
        }

        return best ?? throw BlockException.NotSupported($"'{file.FileName}' is in no format Strata reads ({FormatNames}); give its format explicitly");
    }

    private static FrozenDictionary<string, T> ByName<T>(IReadOnlyList<T> drivers, Func<T, string> name, string kind)
    {
        var byName = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var driver in drivers)
        {
            if (!byName.TryAdd(name(driver), driver))
            {
                throw new ArgumentException($"Two {kind} drivers are called '{name(driver)}'", nameof(drivers));
            }
        }

        return byName.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
