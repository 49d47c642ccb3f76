using Kangaroo.Speculative;

namespace Kangaroo.Generation;

public enum StopReason
{
    /// <summary>The model produced an end-of-sequence token.</summary>
    EndOfSequence,
    /// <summary>The requested number of new tokens was reached.</summary>
    MaxTokens,
    /// <summary>A stop string appeared in the text.</summary>
    StopString,
    /// <summary>The context (KV cache) is full.</summary>
    ContextFull,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>Wall-clock timings of one generation.</summary>
public sealed record GenerationTimings(TimeSpan Prefill, TimeSpan Decode, int PromptTokens, int DecodedTokens)
{
    /// <summary>Prompt tokens processed per second.</summary>
    public double PrefillTokensPerSecond => Prefill > TimeSpan.Zero ? PromptTokens / Prefill.TotalSeconds : 0;

    /// <summary>
    /// Generated tokens per second of decoding. The first new token comes from the prompt's own logits, so it is not
    /// counted: this is (tokens − 1) over the time after prefill.
    /// </summary>
    public double DecodeTokensPerSecond => Decode > TimeSpan.Zero && DecodedTokens > 1 ? (DecodedTokens - 1) / Decode.TotalSeconds : 0;
}

/// <summary>The outcome of one generation.</summary>
public sealed record GenerationResult(
    string Text,
    IReadOnlyList<int> PromptTokenIds,
    IReadOnlyList<int> TokenIds,
    StopReason StopReason,
    GenerationTimings Timings,
    SpeculativeStats? Speculation = null)
{
    /// <summary>The result of a request cancelled before its prompt was processed: no text, no tokens, no time.</summary>
    internal static GenerationResult CancelledBeforeStart(IReadOnlyList<int> promptTokens) =>
        new("", promptTokens, [], StopReason.Cancelled, new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, promptTokens.Count, 0));
}
