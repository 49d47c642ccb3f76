namespace Kangaroo.Sampling;

/// <summary>One sequence's way of choosing tokens: its settings and its own generator (draws never mix sequences).</summary>
public sealed record SequenceSampling(SamplingSettings Settings, DeterministicRandom Random)
{
    public bool IsGreedy => Settings.IsGreedy;
}
