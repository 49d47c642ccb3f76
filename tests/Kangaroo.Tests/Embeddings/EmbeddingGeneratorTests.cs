using Kangaroo.Backends.Cpu;
using Kangaroo.Extensions.AI;
using Microsoft.Extensions.AI;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Embeddings;

/// <summary>The engine behind Microsoft.Extensions.AI's embedding abstraction.</summary>
public sealed class EmbeddingGeneratorTests : IDisposable
{
    private readonly LanguageModel _model = LanguageModel.Load(TestModels.DemoDirectory,
        new ModelLoadOptions { Backend = new CpuBackend() });

    public void Dispose() => _model.Dispose();

    [Fact]
    public async Task GeneratesTheModelsEmbeddingsWithUsageAndMetadata()
    {
        using IEmbeddingGenerator<string, Embedding<float>> generator = new KangarooEmbeddingGenerator(_model);
        string[] texts = ["def fibonacci(n):", "import os\n"];
        var generated = await generator.GenerateAsync(texts, cancellationToken: TestContext.Current.CancellationToken);

        var expected = _model.Embed(texts);
        Assert.Equal(2, generated.Count);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(expected[i], generated[i].Vector.ToArray());
            Assert.Equal("demo", generated[i].ModelId);
        }
        long tokens = texts.Sum(t => (long)_model.Tokenizer.Encode(t, _model.Tokenizer.AddBosToken).Length);
        Assert.Equal(tokens, generated.Usage!.InputTokenCount);

        var metadata = generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.Equal("kangaroo", metadata.ProviderName);
        Assert.Equal(_model.Config.HiddenSize, metadata.DefaultModelDimensions);
        Assert.Same(_model, generator.GetService<LanguageModel>());
        Assert.Null(generator.GetService<LanguageModel>("a key"));
    }

    [Fact]
    public async Task OtherDimensionsAndCancellationAreRefused()
    {
        using var generator = new KangarooEmbeddingGenerator(_model);
        var e = await Assert.ThrowsAsync<InvalidRequestException>(() =>
            generator.GenerateAsync(["x"], new EmbeddingGenerationOptions { Dimensions = 3 }, TestContext.Current.CancellationToken));
        Assert.Contains($"{_model.Config.HiddenSize} dimensions, not 3", e.Message);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => generator.GenerateAsync(["x"], cancellationToken: cancelled.Token));
    }
}
