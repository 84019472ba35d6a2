namespace Strata.Block;

/// <summary>Whether <see cref="IBlockNode.SetPermissions"/> looks at what other users of the image hold.</summary>
public enum PermissionCheck
{
    /// <summary>Refuse (<see cref="BlockError.Locked"/>) what conflicts with another user of the image.</summary>
    Conflicts,

    /// <summary>
    /// Take the locks without looking. Only to take over what another node of this process holds on
    /// the same image and has checked (a reopen), or to restore what this node held a moment ago: the
    /// other node's own locks would otherwise look like a stranger's.
    /// </summary>
    Skip,

    /// <summary>
    /// Look once and refuse at once, naming no holder: for a caller that only asks whether another
    /// user holds the image (is a dirty_bitmap file tracked?) and gives the permissions up again. It
    /// skips <see cref="Conflicts"/>' second looks for this process's own short-lived copies of a
    /// descriptor, which cost a refusal its delay: a probe that finds a conflict is not an error.
    /// </summary>
    Probe,
}
