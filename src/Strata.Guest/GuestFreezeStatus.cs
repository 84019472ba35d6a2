namespace Strata.Guest;

/// <summary>guest-fsfreeze-status's answer (qga/qapi-schema.json, GuestFsfreezeStatus).</summary>
public enum GuestFreezeStatus
{
    Thawed,
    Frozen,
}
