using System.Globalization;
using Strata.Block;

namespace Strata.Cli.Img;

/// <summary>
/// <c>strata img check</c>: an image's metadata consistency (any format that can check itself,
/// <see cref="IImageCheck"/>), with qemu-img's text, JSON and exit codes.
/// </summary>
public static class CheckCommand
{
    /// <summary>qemu-img's status when the format has nothing to check (raw).</summary>
    public const int NotSupported = 63;

    private const string Synopsis = "check [-f FMT] [-r leaks|all] [--output=human|json] [-q] [-U] FILE";

    private static readonly ArgParser Parser = new("f:r:qU", "output=", "repair=", "force-share");

    public static ImgSubcommand Definition { get; } = new("check", Synopsis, ManualText.Build(
        "check", "check an image's metadata for consistency", "strata img " + Synopsis,
        "Walks every qcow2 table and compares each cluster's refcount with the references to it.\n"
        + "Findings go to stderr, the summary to stdout, as qemu-img check prints them.",
        [
            ("-f FMT", "The image's format; probed when omitted."),
            ("-r leaks|all", "Repair: 'leaks' frees leaked clusters, 'all' also fixes corruptions. The image\n"
                + "is checked again after the repair."),
            ("--output=human|json", "Text (default) or JSON with qemu-img's keys."),
            ("-q", "Quiet: print nothing but errors."),
            ("-U, --force-share", "Check the image even while another process writes it (the result may then\n"
                + "be wrong). Not with -r."),
        ],
        "0 no inconsistency, 1 the check could not be completed (or an error), 2 corruptions found,\n"
        + "3 leaks found (and no corruption), 63 the format does not support checks (raw)."), RunAsync);

    private static async Task<int> RunAsync(IReadOnlyList<string> args, ImgContext context)
    {
        var parsed = Parser.Parse(args);
        context.Quiet = parsed.Has("q");
        bool json = OutputFormat.IsJson(parsed.Get("output"));
        var repair = (parsed.Get("r") ?? parsed.Get("repair")) switch
        {
            null => ImageRepair.None,
            "leaks" => ImageRepair.Leaks,
            "all" => ImageRepair.All,
            var other => throw new CliException($"Invalid option for -r: '{other}' (expected leaks or all)"),
        };
        if (parsed.Positionals.Count != 1)
        {
            throw new CliException(parsed.Positionals.Count == 0 ? "Expecting one image file name" : $"Unexpected argument: {parsed.Positionals[1]}");
        }

        string file = parsed.Positionals[0];
        bool forceShare = ImgContext.ForceShare(parsed);
        if (forceShare && repair != ImageRepair.None)
        {
            throw new CliException($"Could not open '{file}': force-share=on can only be used with read-only images");
        }

        var node = await ImgContext.OpenAsync(file, parsed.Get("f"), readOnly: repair == ImageRepair.None, openBacking: false, forceShare: forceShare,
            repair: repair != ImageRepair.None);
        try
        {
            if (node is not IImageCheck image)
            {
                throw new CliException("This image format does not support checks", NotSupported);
            }

            ImageCheckResult result;
            try
            {
                result = await image.CheckAsync(repair);
                Report(context, result.Messages);
                if (result.CorruptionsFixed > 0 || result.LeaksFixed > 0)
                {
                    if (!json)
                    {
                        context.Say("The following inconsistencies were found and repaired:\n");
                        context.Say($"    {result.LeaksFixed} leaked clusters");
                        context.Say($"    {result.CorruptionsFixed} corruptions\n");
                        context.Say("Double checking the fixed image now...");
                    }

                    var again = await image.CheckAsync(ImageRepair.None);
                    Report(context, again.Messages);
                    result = again with { LeaksFixed = result.LeaksFixed, CorruptionsFixed = result.CorruptionsFixed };
                }
            }
            catch (BlockException e)
            {
                throw new CliException($"Check failed: {e.Message}");
            }

            if (json)
            {
                context.Say(ToJson(result, file, node.DriverName));
            }
            else
            {
                WriteHuman(context, result);
            }

            if (result.CheckErrors > 0)
            {
                context.Err.WriteLine(ImgTool.Prefix + "Check failed");
                return 1;
            }

            return result.Corruptions > 0 ? 2 : result.Leaks > 0 ? 3 : 0;
        }
        finally
        {
            await node.DisposeAsync();
        }
    }

    private static void Report(ImgContext context, IReadOnlyList<string> messages)
    {
        foreach (string message in messages)
        {
            context.Err.WriteLine(message);
        }
    }

    private static void WriteHuman(ImgContext context, ImageCheckResult r)
    {
        if (r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0)
        {
            context.Say("No errors were found on the image.");
        }
        else
        {
            if (r.Corruptions > 0)
            {
                context.Say($"\n{r.Corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.");
            }

            if (r.Leaks > 0)
            {
                context.Say($"\n{r.Leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.");
            }

            if (r.CheckErrors > 0)
            {
                context.Say($"\n{r.CheckErrors} internal errors have occurred during the check.");
            }
        }

        if (r.TotalClusters != 0 && r.AllocatedClusters != 0)
        {
            double allocated = r.AllocatedClusters * 100.0 / r.TotalClusters;
            double fragmented = r.FragmentedClusters * 100.0 / r.AllocatedClusters;
            double compressed = r.CompressedClusters * 100.0 / r.AllocatedClusters;
            context.Say(string.Create(CultureInfo.InvariantCulture,
                $"{r.AllocatedClusters}/{r.TotalClusters} = {allocated:F2}% allocated, {fragmented:F2}% fragmented, {compressed:F2}% compressed clusters"));
        }

        if (r.ImageEndOffset != 0)
        {
            context.Say($"Image end offset: {r.ImageEndOffset}");
        }
    }

    /// <summary>qemu-img's keys; counters that are zero are left out, as qemu-img does.</summary>
    private static string ToJson(ImageCheckResult r, string file, string format) => OutputFormat.Json(w =>
    {
        w.WriteStartObject();
        if (r.ImageEndOffset != 0)
        {
            w.WriteNumber("image-end-offset", r.ImageEndOffset);
        }

        w.WriteNumber("total-clusters", r.TotalClusters);
        Optional(w, "corruptions", r.Corruptions);
        Optional(w, "corruptions-fixed", r.CorruptionsFixed);
        w.WriteNumber("check-errors", r.CheckErrors);
        Optional(w, "leaks", r.Leaks);
        Optional(w, "leaks-fixed", r.LeaksFixed);
        Optional(w, "allocated-clusters", r.AllocatedClusters);
        Optional(w, "fragmented-clusters", r.FragmentedClusters);
        Optional(w, "compressed-clusters", r.CompressedClusters);
        w.WriteString("filename", file);
        w.WriteString("format", format);
        w.WriteEndObject();
    });

    private static void Optional(System.Text.Json.Utf8JsonWriter w, string name, long value)
    {
        if (value != 0)
        {
            w.WriteNumber(name, value);
        }
    }
}
