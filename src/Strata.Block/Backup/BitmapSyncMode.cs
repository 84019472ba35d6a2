namespace Strata.Block.Backup;

/// <summary>What a backup does with its bitmap when it ends (qapi/block-core.json BitmapSyncMode).</summary>
public enum BitmapSyncMode
{
    /// <summary>After a success the bitmap holds only the writes since the job started; after a failure it is as if no job had run.</summary>
    OnSuccess,

    /// <summary>The bitmap is never cleared: it goes on holding everything since it was last cleared.</summary>
    Never,

    /// <summary>What was copied is cleared, even when the job fails: the bitmap then holds what is left to copy and the new writes.</summary>
    Always,
}
