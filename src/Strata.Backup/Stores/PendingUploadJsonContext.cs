using System.Text.Json.Serialization;

namespace Strata.Backup.Stores;

/// <summary>The pending upload's JSON, generated at build time (the command line is compiled ahead of time: no reflection).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(PendingUpload))]
internal sealed partial class PendingUploadJsonContext : JsonSerializerContext;
