namespace Strata.Formats.Raw;

/// <summary>
/// What creating a file does when something already has its name. Neither ever follows a symbolic
/// link in the last component of the path: a link there may point anywhere, at a file nobody meant
/// to give away (issue "files created safely"; open(2) O_NOFOLLOW, O_EXCL).
/// </summary>
public enum FileCreation
{
    /// <summary>
    /// An existing regular file is emptied and reused, as <c>qemu-img create</c> and <c>convert</c>
    /// do with their target; a symbolic link, a directory or a device is refused.
    /// </summary>
    ReplaceRegularFile,

    /// <summary>
    /// Fails when anything at all has the name (O_CREAT|O_EXCL): for temporary files and overlays,
    /// which must be ours alone.
    /// </summary>
    New,
}
