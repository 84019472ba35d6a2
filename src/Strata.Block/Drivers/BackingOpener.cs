namespace Strata.Block.Drivers;

/// <summary>
/// Opens the image a layer records as its backing file: <paramref name="name"/> as recorded
/// (relative to the layer's locator), <paramref name="format"/> as recorded (null: probed). The
/// opener resolves the name, bounds the chain, refuses loops and sets the backing permissions.
/// </summary>
public delegate ValueTask<IBlockNode> BackingOpener(string name, string? format, CancellationToken cancellationToken);
