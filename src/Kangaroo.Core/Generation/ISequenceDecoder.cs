using Kangaroo.Speculative;

namespace Kangaroo.Generation;

/// <summary>
/// The tokens of one sequence, one or more per step, as <see cref="GenerationRun"/> consumes them. The generation loop
/// owns stop conditions, text and timings, so a decoder only has to be right about tokens. The one implementation is a
/// slot of the <see cref="BatchScheduler"/> (<see cref="SchedulerSlot"/>).
/// </summary>
internal interface ISequenceDecoder
{
    /// <summary>Starts a sequence from <paramref name="promptTokens"/> (non-empty).</summary>
    void Prefill(ReadOnlySpan<int> promptTokens);

    /// <summary>
    /// Writes the next tokens (at least 1, at most <paramref name="destination"/>.Length) and returns how many. After n
    /// tokens were produced the cache holds at most prompt + n − 1 positions.
    /// </summary>
    int Next(Span<int> destination);

    /// <summary>Most tokens one <see cref="Next"/> can return.</summary>
    int MaxTokensPerStep { get; }

    /// <summary>Drafting and verification figures of the current sequence; null without speculation.</summary>
    SpeculativeStats? SpeculativeStats { get; }
}
