using System.Text.Json;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// One `strata serve` process (a raw 1 MiB drive "ide0-hd0", -v) whose control socket a test class
/// shares: each test opens its own connections with <see cref="ConnectAsync"/>.
/// </summary>
public sealed class ServedControlSocket : IAsyncLifetime, IDisposable
{
    private readonly TempFolder _folder = new("qmp");
    private BackgroundProcess? _serve;

    public string Folder => _folder.Path;

    public string SocketPath => _folder.File("q.sock");

    public BackgroundProcess Serve => _serve ?? throw new InvalidOperationException("the daemon has not started");

    public async Task InitializeAsync()
    {
        string image = _folder.File("foo.img");
        await Processes.OkAsync("truncate", "-s", "1M", image);
        _serve = ServeProcess.Start(_folder.Path, null, "--drive", $"id=ide0-hd0,file={image},format=raw",
            "--nbd", $"unix:{_folder.File("n.sock")}", "--qmp", $"unix:{SocketPath}", "-v");
        await _serve.WaitForFileAsync(SocketPath);
    }

    /// <summary>A new connection past capabilities negotiation.</summary>
    public async Task<QmpWire> ConnectAsync()
    {
        var (client, _) = await QmpWire.ConnectAsync(SocketPath);
        var reply = await client.ExchangeAsync("""{"execute": "qmp_capabilities"}""");
        Assert.True(reply.TryGetProperty("return", out _), $"negotiation failed: {reply}");
        return client;
    }

    public Task DisposeAsync()
    {
        Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Kills the daemon by its PID and deletes the folder; xUnit calls both disposers of a fixture, so twice is fine.</summary>
    public void Dispose()
    {
        _serve?.Dispose();
        _serve = null;
        _folder.Dispose();
    }

    /// <summary>The error class and text of <paramref name="reply"/>; fails when it is not an error.</summary>
    public static (string Class, string Desc) Error(JsonElement reply)
    {
        Assert.True(reply.TryGetProperty("error", out var error), $"expected an error, got {reply}");
        return (error.GetProperty("class").GetString()!, error.GetProperty("desc").GetString()!);
    }
}
