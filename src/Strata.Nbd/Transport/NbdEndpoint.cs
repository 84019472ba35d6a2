using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Strata.Nbd.Transport;

/// <summary>
/// Where a server listens or a client connects: <c>unix:PATH</c> or <c>tcp:HOST:PORT</c>, the
/// spelling of qemu-storage-daemon's <c>--nbd-server addr.type=…</c> shortened.
/// </summary>
public sealed record NbdEndpoint(EndPoint EndPoint, string Text)
{
    public bool IsUnix => EndPoint is UnixDomainSocketEndPoint;

    /// <summary>The socket file of a unix endpoint, else null.</summary>
    public string? UnixPath => IsUnix ? Text["unix:".Length..] : null;

    public static NbdEndpoint Unix(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new NbdEndpoint(new UnixDomainSocketEndPoint(path), "unix:" + path);
    }

    /// <summary>Parses <c>unix:PATH</c> or <c>tcp:HOST:PORT</c> (IPv6 hosts in brackets); throws <see cref="FormatException"/>.</summary>
    public static NbdEndpoint Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            string path = text["unix:".Length..];
            if (path.Length == 0)
            {
                throw new FormatException($"'{text}': a unix socket needs a path (unix:PATH)");
            }

            return Unix(path);
        }

        if (text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            string rest = text["tcp:".Length..];
            int colon = rest.LastIndexOf(':');
            if (colon <= 0 || !ushort.TryParse(rest[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out ushort port))
            {
                throw new FormatException($"'{text}': expected tcp:HOST:PORT with an explicit host");
            }

            string host = rest[..colon].Trim('[', ']');
            EndPoint endPoint = IPAddress.TryParse(host, out var address) ? new IPEndPoint(address, port) : new DnsEndPoint(host, port);
            return new NbdEndpoint(endPoint, text);
        }

        throw new FormatException($"'{text}': expected unix:PATH or tcp:HOST:PORT");
    }

    public Socket CreateSocket() => EndPoint is UnixDomainSocketEndPoint
        ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        : new Socket(EndPoint.AddressFamily == AddressFamily.Unspecified ? AddressFamily.InterNetworkV6 : EndPoint.AddressFamily,
            SocketType.Stream, ProtocolType.Tcp);

    public override string ToString() => Text;
}
