using Kangaroo.Speculative;

namespace Kangaroo.Generation;

/// <summary>
/// Decodes several independent sequences together: each sequence lives in its own slot (its own region of one shared
/// KV cache), and a <see cref="Round"/> advances every listed sequence by one step of its own — one token for vanilla
/// decoding, a whole draft-and-verify round for Kangaroo — through forward passes that serve all of them at once. Each
/// sequence's tokens are those it would get decoded alone with the same options and seed (Kangaroo sampling: unless
/// <see cref="Speculative.KangarooOptions.BatchDraftStop"/> cut its drafting; then the same distribution).
/// </summary>
public interface IBatchDecoder : IDisposable
{
    /// <summary>Sequence slots: ids [0, MaxSequences).</summary>
    int MaxSequences { get; }

    /// <summary>Positions each sequence's cache region holds.</summary>
    int ContextLength { get; }

    /// <summary>Most tokens one round gives one sequence.</summary>
    int MaxTokensPerStep { get; }

    /// <summary>Sampling settings of the sequence about to start in <paramref name="sequence"/> (before its <see cref="Prefill"/>).</summary>
    void Configure(int sequence, GenerationOptions options, DeterministicRandom random);

    /// <summary>
    /// Starts a sequence in slot <paramref name="sequence"/> (whatever it held before): processes the prompt and chooses
    /// the first token, which the sequence's next round returns without computing.
    /// </summary>
    void Prefill(int sequence, ReadOnlySpan<int> promptTokens);

    /// <summary>
    /// One round for the listed (distinct, started) sequences: sequence <c>sequences[i]</c> takes at most
    /// <c>room[i]</c> (≥ 1) tokens, written to <c>output[i · MaxTokensPerStep ..]</c>, their count to <c>counts[i]</c>.
    /// Context contract as <see cref="ISequenceDecoder.Next"/>'s: after n tokens a sequence holds at most prompt + n − 1
    /// positions.
    /// </summary>
    void Round(ReadOnlySpan<int> sequences, ReadOnlySpan<int> room, Span<int> output, Span<int> counts);

    /// <summary>Drafting and verification figures of the sequence in a slot; null for non-speculative decoders.</summary>
    SpeculativeStats? Stats(int sequence) => null;
}

/// <summary>Argument checks every <see cref="IBatchDecoder"/> makes.</summary>
internal static class BatchDecoderArguments
{
    public static void CheckSequence(int sequence, int maxSequences)
    {
        if ((uint)sequence >= (uint)maxSequences)
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence, $"sequence slots are [0, {maxSequences})");
    }

    /// <summary>Distinct started slots, room ≥ 1 each, and room for the outputs.</summary>
    public static void CheckRound(ReadOnlySpan<int> sequences, ReadOnlySpan<int> room, Span<int> output, Span<int> counts,
        int maxSequences, int maxTokensPerStep, ReadOnlySpan<bool> started)
    {
        if (room.Length < sequences.Length || counts.Length < sequences.Length || output.Length < (long)sequences.Length * maxTokensPerStep)
            throw new ArgumentException($"{sequences.Length} sequences need as many rooms and counts and {sequences.Length * maxTokensPerStep} output tokens");
        Span<bool> seen = maxSequences <= 1024 ? stackalloc bool[maxSequences] : new bool[maxSequences];
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            CheckSequence(s, maxSequences);
            if (seen[s]) throw new ArgumentException($"sequence {s} is listed twice in one round", nameof(sequences));
            seen[s] = true;
            if (!started[s]) throw new InvalidOperationException($"sequence {s} has no prompt: Prefill must come first");
            if (room[i] < 1) throw new ArgumentOutOfRangeException(nameof(room), room[i], $"sequence {s}: room for at least one token is needed");
        }
    }
}
