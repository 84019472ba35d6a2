using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Strata.Fuzz;

/// <summary>
/// Two connected unix stream sockets (socketpair(2)): the server under test owns one end, the fuzz
/// input is the client's bytes written into the other. Nothing is bound, so runs never collide on a
/// name and leave nothing behind.
/// </summary>
internal static partial class SocketPair
{
    private const int AfUnix = 1;
    private const int SockStream = 1;
    private const int SockCloexec = 0x80000;

    public static (Socket Server, Socket Client) Create()
    {
        var fds = new int[2];
        if (NativeSocketPair(AfUnix, SockStream | SockCloexec, 0, fds) != 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        return (Wrap(fds[0]), Wrap(fds[1]));
    }

    private static Socket Wrap(int fd) => new(new SafeSocketHandle(fd, ownsHandle: true));

    [LibraryImport("libc", EntryPoint = "socketpair", SetLastError = true)]
    private static partial int NativeSocketPair(int domain, int type, int protocol, [Out] int[] fds);
}
