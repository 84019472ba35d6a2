using System.Text.Json.Serialization;

namespace Strata.Backup;

/// <summary>The manifest's JSON, generated at build time (the command line is compiled ahead of time: no reflection).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower,
    WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BackupManifest))]
[JsonSerializable(typeof(DriveJournal))]
internal sealed partial class ManifestJsonContext : JsonSerializerContext;
