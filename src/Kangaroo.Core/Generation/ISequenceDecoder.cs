using Kangaroo.Speculative;

namespace Kangaroo.Generation;

/// <summary>
/// Produces the tokens of one sequence, one or more per step. Vanilla decoding yields one token per step; speculative
/// decoders yield every token a verification round accepts. The generation loop (<see cref="GenerationRun"/>) owns stop
/// conditions, text and timings, so a decoder only has to be right about tokens.
/// </summary>
public interface ISequenceDecoder
{
    /// <summary>Starts a sequence from <paramref name="promptTokens"/> (non-empty). A decoder may reuse a cached prefix.</summary>
    void Prefill(ReadOnlySpan<int> promptTokens);

    /// <summary>
    /// Writes the next tokens (at least 1, at most <paramref name="destination"/>.Length) and returns how many.
    /// Contract on context use: after n tokens were produced the cache holds at most prompt + n − 1 positions, so a caller
    /// that never asks past prompt + n ≤ capacity + 1 never overflows the cache.
    /// </summary>
    int Next(Span<int> destination);

    /// <summary>Most tokens one <see cref="Next"/> can return.</summary>
    int MaxTokensPerStep => 1;

    /// <summary>Drafting and verification figures of the current sequence; null for non-speculative decoders.</summary>
    SpeculativeStats? SpeculativeStats => null;
}

/// <summary>Argument checks every <see cref="ISequenceDecoder"/> makes.</summary>
internal static class SequenceDecoderArguments
{
    /// <summary>A prompt must have a token and fit the cache.</summary>
    public static void CheckPrompt(ReadOnlySpan<int> promptTokens, int capacity)
    {
        if (promptTokens.IsEmpty) throw new ArgumentException("the prompt has no tokens", nameof(promptTokens));
        if (promptTokens.Length > capacity)
            throw new InvalidRequestException($"the prompt has {promptTokens.Length} tokens; the context holds {capacity}");
    }
}
