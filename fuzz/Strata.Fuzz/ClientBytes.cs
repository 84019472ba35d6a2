using System.Net.Sockets;

namespace Strata.Fuzz;

/// <summary>Plays the client of a socket session: the fuzz input goes in, whatever the server says comes back.</summary>
internal static class ClientBytes
{
    /// <summary>
    /// Sends <paramref name="input"/> and half-closes (the server sees end of stream after it), while
    /// collecting the server's bytes until it closes its end. Both sides run at once, so a server that
    /// answers before it has read everything never stalls on a full socket buffer.
    /// </summary>
    public static async Task<byte[]> ExchangeAsync(Socket client, byte[] input)
    {
        ArgumentNullException.ThrowIfNull(client);
        var send = SendAsync(client, input);
        using var output = new MemoryStream();
        var buffer = new byte[64 * 1024];
        try
        {
            // Bounded by the server: it closes after the end of the input, or the run's time limit ends it.
            while (await client.ReceiveAsync(buffer, SocketFlags.None) is var n and > 0)
            {
                output.Write(buffer, 0, n);
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            // The server closed with some of the input unread: its output ends here.
        }

        await send;
        return output.ToArray();
    }

    private static async Task SendAsync(Socket client, byte[] input)
    {
        try
        {
            for (int done = 0; done < input.Length;)
            {
                done += await client.SendAsync(input.AsMemory(done), SocketFlags.None);
            }

            client.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted)
        {
            // The server hung up before reading everything: allowed, the checker decides whether it was right to.
        }
    }
}
