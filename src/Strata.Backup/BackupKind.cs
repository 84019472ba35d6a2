using System.Text.Json.Serialization;

namespace Strata.Backup;

/// <summary>What a point's image holds: the whole disk, or only what changed since the point before.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BackupKind>))]
public enum BackupKind
{
    /// <summary>A qcow2 image with no backing file: every data run of the disk.</summary>
    [JsonStringEnumMemberName("full")]
    Full,

    /// <summary>A qcow2 image whose backing file is the previous point: the dirty extents of a bitmap.</summary>
    [JsonStringEnumMemberName("incremental")]
    Incremental,
}
