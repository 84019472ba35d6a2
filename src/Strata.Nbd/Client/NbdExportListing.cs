namespace Strata.Nbd.Client;

/// <summary>One NBD_REP_SERVER entry of NBD_OPT_LIST.</summary>
public sealed record NbdExportListing(string Name, string Description);
