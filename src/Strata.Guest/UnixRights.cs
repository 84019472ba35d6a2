using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Strata.Guest;

/// <summary>
/// The link between the daemon and its freeze watch: a unix stream socket pair whose messages can
/// carry one open descriptor each (SCM_RIGHTS, unix(7) and cmsg(3)). The daemon hands the watch a
/// copy of its connection to a guest's agent this way, so that the watch can thaw the guest on that
/// same connection while the daemon is alive but stopped: QEMU's chardev serves one client at a
/// time, and a second connection would wait until the daemon's closed. The layouts are those of
/// Linux on 64-bit machines (struct msghdr, iovec and cmsghdr are the same on x86-64 and arm64).
/// </summary>
internal static partial class UnixRights
{
    private const int AfUnix = 1;
    private const int SockStream = 1;
    private const int SockCloexec = 0x80000;
    private const int SolSocket = 1;
    private const int ScmRights = 1;
    private const int FSetFd = 2;
    private const int MsgNoSignal = 0x4000;
    private const int EIntr = 4;

    /// <summary>sizeof(struct cmsghdr): cmsg_len (size_t), cmsg_level and cmsg_type (int).</summary>
    private const int CmsgHeader = 16;

    /// <summary>At most this many descriptors are taken from one read; the daemon sends one per message.</summary>
    private const int MaxDescriptors = 8;

    /// <summary>
    /// A connected pair, both ends close-on-exec: the caller keeps the first and makes the second
    /// inheritable only for the child that needs it (<see cref="MakeInheritable"/>).
    /// </summary>
    public static unsafe (SafeSocketHandle Mine, SafeSocketHandle Theirs) SocketPair()
    {
        int* fds = stackalloc int[2];
        if (socketpair(AfUnix, SockStream | SockCloexec, 0, fds) != 0)
        {
            throw new IOException($"socketpair failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        return (new SafeSocketHandle(fds[0], ownsHandle: true), new SafeSocketHandle(fds[1], ownsHandle: true));
    }

    /// <summary>Clears close-on-exec, so that the next child started inherits the descriptor under the same number.</summary>
    public static void MakeInheritable(SafeHandle descriptor)
    {
        if (fcntl(descriptor, FSetFd, 0) != 0)
        {
            throw new IOException($"fcntl(F_SETFD) failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>
    /// Writes all of <paramref name="data"/> on a blocking stream socket, with a copy of
    /// <paramref name="descriptor"/> attached to its first byte when one is given.
    /// </summary>
    public static unsafe void Send(SafeHandle socket, ReadOnlySpan<byte> data, SafeHandle? descriptor)
    {
        bool addedSocket = false, addedDescriptor = false;
        try
        {
            socket.DangerousAddRef(ref addedSocket);
            int fd = (int)socket.DangerousGetHandle();
            int passed = -1;
            if (descriptor is not null)
            {
                descriptor.DangerousAddRef(ref addedDescriptor);
                passed = (int)descriptor.DangerousGetHandle();
            }

            byte* control = stackalloc byte[CmsgHeader + 8];
            fixed (byte* start = data)
            {
                int sent = 0;
                while (sent < data.Length)
                {
                    var iov = new IoVec { Base = start + sent, Length = (nuint)(data.Length - sent) };
                    var message = new MsgHdr { Iov = &iov, IovLength = 1 };
                    if (passed >= 0 && sent == 0)
                    {
                        *(nuint*)control = CmsgHeader + sizeof(int);
                        *(int*)(control + 8) = SolSocket;
                        *(int*)(control + 12) = ScmRights;
                        *(int*)(control + CmsgHeader) = passed;
                        message.Control = control;
                        message.ControlLength = CmsgHeader + 8;
                    }

                    nint n = sendmsg(fd, &message, MsgNoSignal);
                    if (n < 0)
                    {
                        if (Marshal.GetLastPInvokeError() == EIntr)
                        {
                            continue;
                        }

                        throw new IOException($"sendmsg failed: {Marshal.GetLastPInvokeErrorMessage()}");
                    }

                    sent += (int)n;
                }
            }
        }
        finally
        {
            if (addedDescriptor)
            {
                descriptor!.DangerousRelease();
            }

            if (addedSocket)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Reads what is there (blocking until something is) into <paramref name="buffer"/> and adds each
    /// descriptor that came with it to <paramref name="received"/>, in order. The descriptors are not
    /// close-on-exec: .NET leaves such a socket's connection alone when it closes it, and the
    /// connection is shared with the daemon. Returns 0 at end of file.
    /// </summary>
    public static unsafe int Receive(SafeHandle socket, Span<byte> buffer, List<SafeSocketHandle> received)
    {
        bool added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            int fd = (int)socket.DangerousGetHandle();
            int controlSize = CmsgHeader + (MaxDescriptors * sizeof(int));
            byte* control = stackalloc byte[controlSize];
            fixed (byte* start = buffer)
            {
                while (true)
                {
                    var iov = new IoVec { Base = start, Length = (nuint)buffer.Length };
                    var message = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)controlSize };
                    nint n = recvmsg(fd, &message, 0);
                    if (n < 0)
                    {
                        if (Marshal.GetLastPInvokeError() == EIntr)
                        {
                            continue;
                        }

                        throw new IOException($"recvmsg failed: {Marshal.GetLastPInvokeErrorMessage()}");
                    }

                    TakeDescriptors(control, message.ControlLength, received);
                    return (int)n;
                }
            }
        }
        finally
        {
            if (added)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>The SCM_RIGHTS descriptors among the control messages (cmsg(3): CMSG_FIRSTHDR, CMSG_NXTHDR, 8-byte aligned).</summary>
    private static unsafe void TakeDescriptors(byte* control, nuint length, List<SafeSocketHandle> received)
    {
        nuint offset = 0;
        while (offset + CmsgHeader <= length)
        {
            nuint cmsgLength = *(nuint*)(control + offset);
            if (cmsgLength < CmsgHeader || offset + cmsgLength > length)
            {
                return;
            }

            if (*(int*)(control + offset + 8) == SolSocket && *(int*)(control + offset + 12) == ScmRights)
            {
                int count = (int)((cmsgLength - CmsgHeader) / sizeof(int));
                for (int i = 0; i < count; i++)
                {
                    received.Add(new SafeSocketHandle(*(int*)(control + offset + CmsgHeader + ((nuint)i * sizeof(int))), ownsHandle: true));
                }
            }

            offset += (cmsgLength + 7) & ~(nuint)7;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct MsgHdr
    {
        public void* Name;
        public int NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int socketpair(int domain, int type, int protocol, int* fds);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(SafeHandle fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint sendmsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint recvmsg(int fd, MsgHdr* message, int flags);
}
