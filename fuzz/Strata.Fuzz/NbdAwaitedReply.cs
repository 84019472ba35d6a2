using Strata.Nbd.Protocol;

namespace Strata.Fuzz;

/// <summary>A request the server has read and owes one reply to, with what its structured chunks covered so far.</summary>
internal sealed class NbdAwaitedReply(NbdRequest request)
{
    public NbdRequest Request { get; } = request;

    /// <summary>Bytes of a READ described by OFFSET_DATA and OFFSET_HOLE chunks so far.</summary>
    public long Covered { get; set; }

    /// <summary>An error chunk came: the read need not be covered in full.</summary>
    public bool Failed { get; set; }
}
