namespace Strata.Guest;

/// <summary>Something that happened to a guest: its agent came or went, its file systems froze or thawed.</summary>
/// <param name="Guest">The guest's id.</param>
/// <param name="Count">File systems frozen or thawed, for those kinds.</param>
/// <param name="Reason">Why (a thaw's cause, a loss's error), one line.</param>
public sealed record GuestEvent(string Guest, GuestEventKind Kind, int? Count = null, string? Reason = null);
