using Microsoft.Extensions.AI;

namespace Kangaroo.Extensions.AI;

/// <summary>
/// A <see cref="LanguageModel"/> as an <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/>: each text's final-norm
/// hidden states mean-pooled over its tokens and L2-normalised (<see cref="LanguageModel.Embed"/>), computed through
/// the batched forward. The model is not owned: dispose it yourself.
/// </summary>
public sealed class KangarooEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly LanguageModel _model;
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <param name="modelId">The id reported in the metadata and on each embedding; default: the model directory's name.</param>
    public KangarooEmbeddingGenerator(LanguageModel model, string? modelId = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        ModelId = modelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Directory));
        _metadata = new EmbeddingGeneratorMetadata("kangaroo", defaultModelId: ModelId, defaultModelDimensions: model.Config.HiddenSize);
    }

    public string ModelId { get; }

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (options?.Dimensions is int dimensions && dimensions != _model.Config.HiddenSize)
            throw new InvalidRequestException($"this model's embeddings have {_model.Config.HiddenSize} dimensions, not {dimensions}");
        cancellationToken.ThrowIfCancellationRequested();
        var tokens = values.Select((text, i) => _model.Tokenizer.Encode(text ?? throw new InvalidRequestException($"text {i} is null"),
            _model.Tokenizer.AddBosToken)).ToList();
        var vectors = _model.Embed(tokens);
        var created = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<Embedding<float>>(vectors.Select(v => new Embedding<float>(v)
        {
            ModelId = ModelId,
            CreatedAt = created,
        }))
        {
            Usage = new UsageDetails
            {
                InputTokenCount = tokens.Sum(t => (long)t.Length),
            },
        };
        return Task.FromResult(result);
    }

    /// <summary>The metadata, the <see cref="LanguageModel"/>, or this generator, by the type asked for.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType.IsInstanceOfType(_model)) return _model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose() { }
}
