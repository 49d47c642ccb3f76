using Kangaroo.Generation;
using Kangaroo.Speculative;

namespace Kangaroo;

/// <summary>One sequence's state on a model: KV cache and scratch. Not thread-safe; create one per concurrent generation.</summary>
public sealed class InferenceSession : IDisposable
{
    private readonly LanguageModel _owner;
    private VanillaDecoder? _vanilla;
    private ISpeculativeDecoder? _kangaroo;
    private KangarooOptions? _kangarooOptions;

    internal InferenceSession(LanguageModel owner, int contextLength)
    {
        if (contextLength < 2) throw new InvalidRequestException($"context length must be at least 2, got {contextLength}");
        owner.CheckContext(contextLength);
        _owner = owner;
        ContextLength = contextLength;
    }

    public int ContextLength { get; }

    /// <summary>Prepares a generation to step through (the building block of the other methods).</summary>
    public GenerationRun Start(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new GenerationOptions();
        options.Validate();
        int[] promptTokens = _owner.Tokenizer.Encode(prompt, options.AddBos ?? _owner.Tokenizer.AddBosToken);
        var random = new DeterministicRandom(options.Seed ?? DeterministicRandom.RandomSeed());
        ISequenceDecoder decoder;
        if (options.Speculation is { } speculation)
        {
            var kangaroo = KangarooDecoderFor(speculation);
            kangaroo.Configure(options, random);
            decoder = kangaroo;
        }
        else
        {
            _vanilla ??= new VanillaDecoder(_owner.Model, ContextLength);
            _vanilla.Configure(options, random);
            decoder = _vanilla;
        }
        return new GenerationRun(decoder, _owner.Tokenizer, promptTokens, options, _owner.EndOfSequenceIds, ContextLength, cancellationToken)
        {
            ExplainNonFinite = _owner.ExplainNonFinite,
        };
    }

    private ISpeculativeDecoder KangarooDecoderFor(KangarooOptions options)
    {
        var adapter = _owner.Adapter ?? throw new InvalidRequestException(
            $"Kangaroo decoding needs an adapter: none was loaded (give one, or put it in {Path.Combine(_owner.Directory, KangarooAdapter.DefaultSubdirectory)})");
        options.Validate(_owner.Config.NumLayers);
        if (_kangaroo is null || _kangarooOptions != options)
        {
            _kangaroo?.Dispose();
            _kangaroo = options.Tree is null
                ? new KangarooDecoder(_owner.Model, adapter, options, ContextLength)
                : new KangarooTreeDecoder(_owner.Model, adapter, options, ContextLength);
            _kangarooOptions = options;
        }
        return _kangaroo;
    }

    public GenerationResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Start(prompt, options, cancellationToken).RunToEnd();

    public GenerationStream GenerateStreaming(string prompt, GenerationOptions? options = null) =>
        new(this, prompt, options, ownsSession: false);

    public void Dispose()
    {
        _vanilla?.Dispose();
        _kangaroo?.Dispose();
    }
}
