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
}
