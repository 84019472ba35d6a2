using Strata.Block;

namespace Strata.Nbd.Server;

/// <summary>
/// What the server exports under one name: a request gate (the drive's), never an image format. The
/// server only validates the wire and maps errors; the gate validates and runs the I/O.
/// </summary>
public sealed class NbdExport
{
    public NbdExport(string name, RequestGate gate, bool readOnly = false, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(gate);
        Name = name;
        Gate = gate;
        ReadOnly = readOnly || gate.IsReadOnly;
        Description = description;
    }

    public string Name { get; }

    public string? Description { get; }

    public RequestGate Gate { get; }

    public bool ReadOnly { get; }
}
