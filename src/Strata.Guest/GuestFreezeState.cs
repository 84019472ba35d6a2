namespace Strata.Guest;

/// <summary>What Strata knows of a guest's file systems.</summary>
public enum GuestFreezeState
{
    Thawed,

    /// <summary>Frozen by begin_snapshot, until end_snapshot or the lease's end.</summary>
    Frozen,

    /// <summary>
    /// The lease of a begin_snapshot ran out and Strata thawed the guest; until end_snapshot, a
    /// snapshot of its drives is refused, since whoever froze it still believes it frozen.
    /// </summary>
    Expired,
}
