using Strata.Block;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Server;

/// <summary>Maps block-layer errors to NBD error values (proto.md, "Error values").</summary>
public static class NbdErrors
{
    public static NbdErrno FromBlockError(BlockError error) => error switch
    {
        BlockError.InvalidArgument => NbdErrno.InvalidArgument,

        // "EPERM ... SHOULD be returned for a write request to a read-only export".
        BlockError.ReadOnly or BlockError.PermissionDenied => NbdErrno.PermissionDenied,
        BlockError.NoSpace => NbdErrno.NoSpace,
        BlockError.NotSupported => NbdErrno.NotSupported,
        _ => NbdErrno.IoError,
    };
}
