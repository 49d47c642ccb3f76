using Kangaroo.Generation;
using Kangaroo.Sampling;

namespace Kangaroo;

/// <summary>One sequence's state on a model: KV cache and scratch. Not thread-safe; create one per concurrent generation.</summary>
public sealed class InferenceSession : IDisposable
{
    private readonly LanguageModel _owner;
    private readonly SchedulerCache _schedulers;

    internal InferenceSession(LanguageModel owner, int contextLength)
    {
        if (contextLength < 2) throw new InvalidRequestException($"context length must be at least 2, got {contextLength}");
        owner.CheckContext(contextLength);
        _owner = owner;
        ContextLength = contextLength;
        _schedulers = new SchedulerCache(owner, maxSequences: 1, contextLength);
    }

    public int ContextLength { get; }

    /// <summary>
    /// Prepares a generation to step through (the building block of the other methods). The sequence is slot 0 of a batch
    /// of one; a prompt that starts like the session's previous sequence reuses its cached prefix.
    /// </summary>
    public GenerationRun Start(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new GenerationOptions();
        options.Validate();
        int[] promptTokens = _owner.Tokenizer.Encode(prompt, options.AddBos ?? _owner.Tokenizer.AddBosToken);
        var scheduler = _schedulers.For(options.Speculation);
        scheduler.Configure(0, options, new DeterministicRandom(options.Seed ?? DeterministicRandom.RandomSeed()));
        return new GenerationRun(new SchedulerSlot(scheduler, 0), _owner.Tokenizer, promptTokens, options, _owner.EndOfSequenceIds, ContextLength,
            cancellationToken)
        {
            ExplainNonFinite = _owner.ExplainNonFinite,
        };
    }

    public GenerationResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Start(prompt, options, cancellationToken).RunToEnd();

    public GenerationStream GenerateStreaming(string prompt, GenerationOptions? options = null) =>
        new(this, prompt, options, ownsSession: false);

    public void Dispose() => _schedulers.Dispose();
}
