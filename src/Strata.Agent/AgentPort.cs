namespace Strata.Agent;

/// <summary>
/// The guest end of the virtio-serial port. Reading it returns 0 bytes while no host has the other
/// end open (drivers/char/virtio_console.c, port_fops_read), so end of file is not the end: the loop
/// waits a little and reads again, which is how a host that reconnects finds the agent still there.
/// </summary>
internal sealed class AgentPort(string path) : IDisposable
{
    private static readonly TimeSpan Disconnected = TimeSpan.FromMilliseconds(100);

    private readonly FileStream _stream = new(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, bufferSize: 0);

    /// <summary>Reads commands and writes replies until the port fails.</summary>
    public void Serve(GuestAgent agent)
    {
        var framer = new MessageFramer();
        var buffer = new byte[4096];
        while (true)
        {
            int read = _stream.Read(buffer);
            if (read == 0)
            {
                Thread.Sleep(Disconnected);
                continue;
            }

            framer.Feed(buffer.AsSpan(0, read), message =>
            {
                byte[]? reply = message is null
                    ? GuestAgent.ErrorReply("GenericError", $"message longer than {MessageFramer.MaxMessage} bytes")
                    : agent.Handle(message);
                if (reply is not null)
                {
                    _stream.Write(reply);
                    _stream.Flush();
                }
            });
        }
    }

    public void Dispose() => _stream.Dispose();
}
