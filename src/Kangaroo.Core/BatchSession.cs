using Kangaroo.Generation;
using Kangaroo.Speculative;

namespace Kangaroo;

/// <summary>
/// Several sequences decoded together on one model (vanilla, or Kangaroo's chain with <see cref="GenerationOptions.Speculation"/>):
/// every round advances all running sequences through forward passes that serve them all, so the weights are read once
/// for many tokens. A finished sequence's slot takes the next prompt. Not thread-safe; reusable across calls.
/// </summary>
public sealed class BatchSession : IDisposable
{
    private readonly LanguageModel _owner;
    private BatchVanillaDecoder? _vanilla;
    private BatchKangarooDecoder? _kangaroo;
    private KangarooOptions? _kangarooOptions;

    internal BatchSession(LanguageModel owner, int maxSequences, int contextLength)
    {
        if (maxSequences < 1) throw new InvalidRequestException($"a batch needs at least one sequence, got {maxSequences}");
        if (contextLength < 2) throw new InvalidRequestException($"context length must be at least 2, got {contextLength}");
        owner.CheckContext(contextLength);
        _owner = owner;
        MaxSequences = maxSequences;
        ContextLength = contextLength;
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
    /// same distribution (the verification stays lossless). Token trees are not batched: with
    /// <c>Speculation.Tree</c> set this is an <see cref="InvalidRequestException"/>. Each result's timings span its own
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
        IBatchDecoder decoder = options.Speculation is { } speculation ? KangarooDecoderFor(speculation) : _vanilla ??= new BatchVanillaDecoder(_owner.Model, MaxSequences, ContextLength);
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

    private BatchKangarooDecoder KangarooDecoderFor(KangarooOptions options)
    {
        var adapter = _owner.Adapter ?? throw new InvalidRequestException(
            $"Kangaroo decoding needs an adapter: none was loaded (give one, or put it in {Path.Combine(_owner.Directory, KangarooAdapter.DefaultSubdirectory)})");
        options.Validate(_owner.Config.NumLayers);
        if (options.Tree is not null)
            throw new InvalidRequestException("token trees are not decoded in batches: set Speculation.Tree to null (the chain), or generate each prompt alone");
        if (_kangaroo is null || _kangarooOptions != options)
        {
            _kangaroo?.Dispose();
            _kangaroo = new BatchKangarooDecoder(_owner.Model, adapter, options, MaxSequences, ContextLength);
            _kangarooOptions = options;
        }
        return _kangaroo;
    }

    public void Dispose()
    {
        _vanilla?.Dispose();
        _kangaroo?.Dispose();
    }
}
