namespace Kangaroo.Speculative;

/// <summary>
/// Kangaroo's settings for one generation. Defaults are the paper's single-sequence settings for Vicuna-7B:
/// exit layer ℓ = 2, at most γ = 6 drafts per round, confidence threshold η = 0.6.
/// </summary>
public sealed record KangarooOptions
{
    /// <summary>ℓ: drafting runs base layers [0, ℓ); verification runs [ℓ, L). Null = the adapter's recorded exit layer, else 2.</summary>
    public int? ExitLayer { get; init; }

    /// <summary>γ: most tokens drafted in one round.</summary>
    public int MaxDraftSteps { get; init; } = 6;

    /// <summary>
    /// η: drafting stops after a draft whose top-1 probability is below η (that draft is still verified, as in the
    /// reference implementation). 0 = always draft γ tokens; 1 = one draft per round.
    /// </summary>
    public float Threshold { get; init; } = 0.6f;

    /// <summary>
    /// Several sequences at once (chain drafting): a round's draft steps serve every sequence still
    /// drafting, so the batch waits for its longest drafter. Drafting ends for all once fewer than this share of the
    /// round's sequences still draft (their drafts so far are verified: output unchanged, only how much each round
    /// proposes). 0 = every sequence drafts until its own stop, as alone; one sequence alone is never cut.
    /// </summary>
    public float BatchDraftStop { get; init; } = 0.25f;

    /// <summary>Draft a dynamic token tree instead of a chain; null = chain drafting.</summary>
    public TokenTreeOptions? Tree { get; init; }

    public const int DefaultExitLayer = 2;

    /// <summary>ℓ for a model of <paramref name="baseLayers"/> layers: the one asked, else the adapter's recorded one, else 2 — checked.</summary>
    public int ResolveExitLayer(KangarooAdapter adapter, int baseLayers)
    {
        int exit = ExitLayer ?? adapter.RecordedExitLayer ?? DefaultExitLayer;
        if (exit < 1 || exit >= baseLayers)
            throw new InvalidRequestException($"exit layer must be in [1, {baseLayers - 1}] for a model of {baseLayers} layers, got {exit}");
        return exit;
    }

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the invalid setting.</summary>
    public void Validate(int baseLayers)
    {
        if (ExitLayer is int exit && (exit < 1 || exit >= baseLayers))
            throw new InvalidRequestException($"exit layer must be in [1, {baseLayers - 1}] for a model of {baseLayers} layers, got {exit}");
        if (MaxDraftSteps < 1)
            throw new InvalidRequestException($"draft steps must be at least 1, got {MaxDraftSteps}");
        if (!(Threshold >= 0 && Threshold <= 1))
            throw new InvalidRequestException($"threshold must be in [0, 1], got {Threshold}");
        if (!(BatchDraftStop >= 0 && BatchDraftStop <= 1))
            throw new InvalidRequestException($"batch draft stop must be in [0, 1], got {BatchDraftStop}");
        Tree?.Validate();
    }
}

/// <summary>
/// Kangaroo's dynamic token tree (paper: top-K = 10, η = 0.4). Level by level, the nodes of the deepest level propose
/// their adapter's top-K tokens. A node proposes only if it is the root or its own probability reaches the chain's η
/// (<see cref="KangarooOptions.Threshold"/>: the confidence stop); its best proposal always becomes a child — so the
/// tree holds the chain that chain drafting would propose — and the others whose path probability (the product of the
/// adapter's probabilities along the path) reaches <see cref="Threshold"/> may, best first, at most top-K per level,
/// until <see cref="Budget"/> nodes or γ (<see cref="KangarooOptions.MaxDraftSteps"/>) levels.
/// </summary>
public sealed record TokenTreeOptions
{
    /// <summary>Children proposed per node.</summary>
    public int TopK { get; init; } = 10;

    /// <summary>
    /// Smallest path probability of a drafted node besides its parent's best child. 0.1: on the demo model (CPU, 120
    /// tokens of "def fibonacci(n):") 2.90 tokens per round against the chain's 2.43; 0.4 added no alternatives there.
    /// </summary>
    public float Threshold { get; init; } = 0.1f;

    /// <summary>Most drafted nodes per round (the root, the last accepted token, not counted).</summary>
    public int Budget { get; init; } = 16;

    public void Validate()
    {
        if (TopK < 1) throw new InvalidRequestException($"tree top-K must be at least 1, got {TopK}");
        if (!(Threshold >= 0 && Threshold <= 1)) throw new InvalidRequestException($"tree threshold must be in [0, 1], got {Threshold}");
        if (Budget < 1 || Budget > 256) throw new InvalidRequestException($"tree budget must be in [1, 256], got {Budget}");
    }
}
