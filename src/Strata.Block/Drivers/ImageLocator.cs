namespace Strata.Block.Drivers;

/// <summary>
/// Where an image lives: a local path today (protocol "file"), a store's address later
/// (<c>rbd:pool/image</c>, <c>s3://bucket/key</c>). Two locators are the same image when their
/// protocol and target are equal, so a chain that loops back is seen whatever spelling reached it.
/// </summary>
/// <remarks>
/// Made by <see cref="DriverRegistry.Locate"/>, which knows which protocols are registered: a name
/// whose prefix before ':' is not one of them is a local path, so a file named <c>a:b.img</c> stays a
/// file. Local-path rules (full paths, folders) live here and in the file driver only.
/// </remarks>
public sealed class ImageLocator : IEquatable<ImageLocator>
{
    /// <summary>The protocol of local files.</summary>
    public const string FileProtocol = "file";

    private ImageLocator(string protocol, string target, string text)
    {
        Protocol = protocol;
        Target = target;
        Text = text;
    }

    /// <summary>The protocol driver's name: "file", "rbd", …</summary>
    public string Protocol { get; }

    /// <summary>What the protocol driver opens: a full path for a file, what follows the scheme otherwise.</summary>
    public string Target { get; }

    /// <summary>The image's name as it was given (messages, <see cref="IBlockNode.FileName"/>).</summary>
    public string Text { get; }

    public bool IsFile => Protocol == FileProtocol;

    /// <summary>
    /// The image's name that holds wherever it is read: a local file's full path, a store's locator
    /// as written (<c>rbd:pool/image:conf=…</c>). What an overlay records as its backing file and what
    /// identifies an image in a drive's chain.
    /// </summary>
    public string FullName => IsFile ? Target : Text;

    /// <summary>A local file; <paramref name="path"/> may be relative to the working folder.</summary>
    public static ImageLocator ForFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new ImageLocator(FileProtocol, Path.GetFullPath(path), path);
    }

    /// <summary>An image in a store reached by <paramref name="protocol"/>: <c>protocol:target</c>.</summary>
    public static ImageLocator ForProtocol(string protocol, string target)
    {
        ArgumentException.ThrowIfNullOrEmpty(protocol);
        ArgumentNullException.ThrowIfNull(target);
        return protocol == FileProtocol ? ForFile(target) : new ImageLocator(protocol, target, protocol + ":" + target);
    }

    /// <summary>
    /// Where a relative backing name recorded in this image points: next to it, in the same store.
    /// A file's relative name joins its folder and is made full; an absolute path stays as written
    /// (as QEMU does, bdrv_get_full_backing_filename). Names that are themselves locators are resolved
    /// by <see cref="DriverRegistry.ResolveBacking(ImageLocator, string)"/> before this is asked.
    /// </summary>
    public ImageLocator Sibling(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (IsFile)
        {
            if (Path.IsPathRooted(name))
            {
                return ForFile(name);
            }

            string folder = Path.GetDirectoryName(Target) ?? ".";
            return ForFile(Path.GetFullPath(Path.Combine(folder, name)));
        }

        if (name.StartsWith('/'))
        {
            return ForProtocol(Protocol, name);
        }

        int slash = Target.LastIndexOf('/');
        return ForProtocol(Protocol, slash < 0 ? name : Target[..(slash + 1)] + name);
    }

    public bool Equals(ImageLocator? other) => other is not null && Protocol == other.Protocol && Target == other.Target;

    public override bool Equals(object? obj) => Equals(obj as ImageLocator);

    public override int GetHashCode() => HashCode.Combine(Protocol, Target);

    public override string ToString() => Text;
}
