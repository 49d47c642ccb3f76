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

    public const int DefaultExitLayer = 2;

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the invalid setting.</summary>
    public void Validate(int baseLayers)
    {
        if (ExitLayer is int exit && (exit < 1 || exit >= baseLayers))
            throw new InvalidRequestException($"exit layer must be in [1, {baseLayers - 1}] for a model of {baseLayers} layers, got {exit}");
        if (MaxDraftSteps < 1)
            throw new InvalidRequestException($"draft steps must be at least 1, got {MaxDraftSteps}");
        if (!(Threshold >= 0 && Threshold <= 1))
            throw new InvalidRequestException($"threshold must be in [0, 1], got {Threshold}");
    }
}
