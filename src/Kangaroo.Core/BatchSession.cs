using Kangaroo.Generation;
using Kangaroo.Sampling;
using Kangaroo.Speculative;

namespace Kangaroo;

/// <summary>
/// Several sequences decoded together on one model (vanilla, or Kangaroo's chain or tree with <see cref="GenerationOptions.Speculation"/>):
/// every round advances all running sequences through forward passes that serve them all, so the weights are read once
/// for many tokens. A finished sequence's slot takes the next prompt. Not thread-safe; reusable across calls.
/// </summary>
public sealed class BatchSession : IDisposable
{
    private readonly LanguageModel _owner;
    private readonly SchedulerCache _schedulers;

    internal BatchSession(LanguageModel owner, int maxSequences, int contextLength)
    {
        if (maxSequences < 1) throw new InvalidRequestException($"a batch needs at least one sequence, got {maxSequences}");
        if (contextLength < 2) throw new InvalidRequestException($"context length must be at least 2, got {contextLength}");
        owner.CheckContext(contextLength);
        _owner = owner;
        MaxSequences = maxSequences;
        ContextLength = contextLength;
        _schedulers = new SchedulerCache(owner, maxSequences, contextLength);
    }

    /// <summary>Sequences decoded at once (more prompts wait for a free slot).</summary>
    public int MaxSequences { get; }
    /// <summary>Positions each sequence holds (prompt + generated).</summary>
    public int ContextLength { get; }

    /// <summary>
    /// Completes every prompt; results in prompt order. Greedy: each result is a single generation's (vanilla's text, with
    /// or without Kangaroo). Sampling: prompt i samples with seed <c>options.Seed + i</c> (a random base when null) and its
    /// tokens are a single generation's with that seed — with Kangaroo as long as the batch draft stop
    /// (<see cref="KangarooOptions.BatchDraftStop"/>) did not cut its drafting; where it did, they are other draws from the
    /// same distribution (the verification stays lossless). With <c>Speculation.Tree</c> every sequence drafts its own
    /// token tree and one pass verifies all the trees. Each result's timings span its own
    /// sequence, which shares every pass with the others. Cancellation ends the running sequences as a single generation
    /// ends (<see cref="StopReason.Cancelled"/>); prompts not started yet come back empty, cancelled.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        options ??= new GenerationOptions();
        options.Validate();
        var tokens = new int[prompts.Count][];
        for (int i = 0; i < prompts.Count; i++)
        {
            string prompt = prompts[i] ?? throw new InvalidRequestException($"prompt {i} is null");
            tokens[i] = _owner.Tokenizer.Encode(prompt, options.AddBos ?? _owner.Tokenizer.AddBosToken);
            if (tokens[i].Length == 0) throw new InvalidRequestException($"prompt {i} is empty (no tokens); give some text");
            if (tokens[i].Length >= ContextLength)
                throw new InvalidRequestException($"prompt {i} has {tokens[i].Length} tokens but the context holds {ContextLength}: leave room for at least one new token");
        }
        var decoder = _schedulers.For(options.Speculation);
        ulong seed = options.Seed ?? DeterministicRandom.RandomSeed();
        try
        {
            return BatchGeneration.Run(decoder, _owner.Tokenizer, tokens, options, i => new DeterministicRandom(unchecked(seed + (ulong)i)),
                _owner.EndOfSequenceIds, cancellationToken);
        }
        catch (NonFiniteLogitsException e) when (!e.Diagnosed)
        {
            throw _owner.ExplainNonFinite(e);
        }
    }

    public void Dispose() => _schedulers.Dispose();
}
