using Kangaroo.Speculative;

namespace Kangaroo.Cli;

/// <summary>The Kangaroo options shared by <c>generate</c> and <c>serve</c>: --kangaroo [--adapter --exit-layer --draft-steps --threshold --tree ...].</summary>
internal static class KangarooArguments
{
    public static readonly string[] ValueOptions = ["adapter", "exit-layer", "draft-steps", "threshold", .. TreeArguments.ValueOptions];
    public const string Flag = "kangaroo";

    public const string Help = """
        Kangaroo self-speculative decoding (lossless: same output as without it):
          --kangaroo           Draft with the first layers + adapter, verify with the rest
          --adapter DIR        Adapter directory (default: the model's kangaroo-adapter/ subfolder)
          --exit-layer L       Layers used for drafting, ℓ (default: the adapter's exit_layer, else 2)
          --draft-steps G      Most drafts per round, γ (default 6)
          --threshold T        Stop drafting after a draft less likely than T, η in [0, 1] (default 0.6)
        """ + "\n" + TreeArguments.Help;

    /// <summary>The Kangaroo options, or null without --kangaroo (then its other options are a usage error). Checked as far as possible without the model.</summary>
    public static KangarooOptions? Parse(Arguments a)
    {
        bool kangaroo = a.Flag(Flag);
        if (!kangaroo && ((a.String("adapter") ?? a.String("exit-layer") ?? a.String("draft-steps") ?? a.String("threshold")) is not null || a.Flag(TreeArguments.Flag)))
            throw new UsageException("--adapter, --exit-layer, --draft-steps, --threshold and --tree need --kangaroo");
        var tree = TreeArguments.Parse(a);
        if (!kangaroo) return null;
        var speculation = new KangarooOptions
        {
            ExitLayer = a.Int("exit-layer"),
            MaxDraftSteps = a.Int("draft-steps") ?? 6,
            Threshold = a.Float("threshold") ?? 0.6f,
            Tree = tree,
        };
        try
        {
            if (speculation.ExitLayer is < 1) throw new UsageException($"--exit-layer must be at least 1, got {speculation.ExitLayer}");
            // The exit layer's upper bound needs the model's layer count: checked when decoding starts.
            (speculation with { ExitLayer = null }).Validate(int.MaxValue);
        }
        catch (InvalidRequestException e)
        {
            throw new UsageException(e.Message);
        }
        return speculation;
    }

    /// <summary>After loading: --kangaroo found its adapter, and the options fit the model.</summary>
    public static void CheckLoaded(KangarooOptions? speculation, LanguageModel model, string modelDirectory)
    {
        if (speculation is null) return;
        if (model.Adapter is null)
            throw new KangarooException($"--kangaroo needs an adapter: give --adapter DIR or put one in {Path.Combine(modelDirectory, KangarooAdapter.DefaultSubdirectory)}");
        speculation.Validate(model.Config.NumLayers);
    }
}
