using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Cli.Img;

/// <summary>What <c>info</c> reports of one image, gathered once and printed as text or JSON.</summary>
public sealed record ImageFacts
{
    public required string FileName { get; init; }

    public required string Format { get; init; }

    public required long VirtualSize { get; init; }

    public required long ActualSize { get; init; }

    /// <summary>What the format says of its header, when it says anything (raw does not).</summary>
    public ImageFormatInfo? FormatInfo { get; init; }

    /// <summary>The backing name as recorded in the header.</summary>
    public string? BackingFile { get; init; }

    /// <summary>The backing file's format as recorded in the header.</summary>
    public string? BackingFormat { get; init; }

    /// <summary>
    /// The backing name joined to the image's folder as qemu-img prints it ("sub/../foo.img"): not
    /// normalized, relative when the image name was.
    /// </summary>
    public string? FullBackingFile => BackingFile is null ? null : JoinBackingName(FileName, BackingFile);

    /// <summary>
    /// A recorded backing name as qemu-img shows it below the image named <paramref name="imageName"/>:
    /// joined to that name's folder without normalizing; absolute paths and locators of another
    /// protocol as they are.
    /// </summary>
    public static string JoinBackingName(string imageName, string backing) =>
        Path.IsPathRooted(backing) || !ImgContext.Drivers.Locate(backing).IsFile ? backing
        : Path.GetDirectoryName(imageName) is { Length: > 0 } folder ? folder + "/" + backing
        : backing;

    /// <summary>
    /// Reads one image's facts. Like qemu-img info, it reads no data, so it takes no permission on
    /// the image; a qcow2 image still forbids other writers of its file while its header is read.
    /// </summary>
    public static async ValueTask<ImageFacts> ReadAsync(string path, string? format, bool forceShare = false)
    {
        var node = await ImgContext.OpenAsync(path, format, readOnly: true, openBacking: false, permissions: NodePermissions.None, forceShare: forceShare);
        try
        {
            var file = node is IFormatNode layer ? layer.File : node;
            var record = node as IBackingFileRecord;
            return new ImageFacts
            {
                FileName = path,
                Format = node.DriverName,
                VirtualSize = node.Size,
                ActualSize = file is IAllocatedSize storage ? storage.AllocatedBytes() : file.Size,
                FormatInfo = (node as IImageFacts)?.FormatInfo,
                BackingFile = record?.BackingFileName,
                BackingFormat = record?.BackingFormat,
            };
        }
        finally
        {
            await node.DisposeAsync();
        }
    }

    /// <summary>The image and, when asked, every image below it (each opened alone, as info needs no data).</summary>
    public static async ValueTask<List<ImageFacts>> ReadChainAsync(string path, string? format, bool wholeChain, bool forceShare = false)
    {
        var chain = new List<ImageFacts>();
        var seen = new HashSet<ImageLocator>();
        while (true)
        {
            if (!seen.Add(ImgContext.Drivers.Locate(path)))
            {
                throw BlockException.Invalid($"Backing chain loops back to '{path}'");
            }

            ImageFacts facts;
            try
            {
                facts = await ReadAsync(path, format, forceShare);
            }
            catch (BlockException e) when (chain.Count > 0)
            {
                throw new BlockException(e.Error, $"Could not open backing file of '{chain[^1].FileName}': {e.Message}", e);
            }

            chain.Add(facts);
            if (!wholeChain || facts.FullBackingFile is not { } next)
            {
                return chain;
            }

            if (chain.Count > 64)
            {
                throw BlockException.Invalid($"Backing chain of '{chain[0].FileName}' is deeper than 64 images");
            }

            path = next;
            format = facts.BackingFormat;
        }
    }
}
