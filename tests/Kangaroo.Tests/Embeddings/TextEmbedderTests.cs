using System.Numerics.Tensors;
using Kangaroo.Backends.Cpu;
using Kangaroo.Embeddings;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Embeddings;

/// <summary>Embeddings on the demo model: the pooled final-norm states, unit length, the same whatever texts share the passes.</summary>
public sealed class TextEmbedderTests : IDisposable
{
    private readonly LanguageModel _model = LanguageModel.Load(TestModels.DemoDirectory, new ModelLoadOptions { Backend = new CpuBackend() });
    private static readonly string[] Texts = ["def fibonacci(n):", "import os\n", "class Stack:\n    def push(self, item):\n        self.items.append(item)", "x"];

    public void Dispose() => _model.Dispose();

    [Fact]
    public void AnEmbeddingIsTheMeanOfTheFinalNormStatesScaledToUnitLength()
    {
        int[] tokens = _model.Tokenizer.Encode(Texts[2], _model.Tokenizer.AddBosToken);
        var model = _model.Model;
        int hidden = model.Config.HiddenSize;
        // The reference: one plain pass over the text alone, its LM-head input read back and pooled here.
        using var cache = model.CreateCache(tokens.Length);
        using var ws = model.CreateWorkspace(tokens.Length);
        model.Embed(ws, tokens, 0);
        model.RunLayers(ws, cache, 0, model.Config.NumLayers, tokens.Length);
        var states = new float[tokens.Length * hidden];
        model.Backend.Download(ws.Normed, 0, states);
        var expected = new float[hidden];
        for (int i = 0; i < hidden; i++)
        {
            double sum = 0;
            for (int t = 0; t < tokens.Length; t++) sum += states[t * hidden + i];
            expected[i] = (float)(sum / tokens.Length);
        }
        TensorPrimitives.Divide(expected, TensorPrimitives.Norm(expected), expected);

        float[] embedding = _model.Embed([Texts[2]])[0];
        Assert.Equal(hidden, embedding.Length);
        Assert.Equal(expected, embedding);
        Assert.Equal(1f, TensorPrimitives.Norm(embedding), 5);
    }

    [Fact]
    public void TextsSharingPassesGetTheBitsOfEachAlone()
    {
        var together = _model.Embed(Texts);
        Assert.Equal(Texts.Length, together.Count);
        for (int i = 0; i < Texts.Length; i++)
            Assert.Equal(_model.Embed([Texts[i]])[0], together[i]);
        // Passes of 3 rows cut texts across passes: still the same bits.
        var tokens = Texts.Select(t => _model.Tokenizer.Encode(t, _model.Tokenizer.AddBosToken)).ToArray();
        using var small = new TextEmbedder(_model.Model, Texts.Length, tokens.Max(t => t.Length), passRows: 3);
        var cut = small.Embed(tokens);
        for (int i = 0; i < Texts.Length; i++) Assert.Equal(together[i], cut[i]);
        // Different texts point different ways; the same text the same way.
        Assert.True(TensorPrimitives.CosineSimilarity(together[0], together[1]) < 0.9999f);
        Assert.Equal(1f, TensorPrimitives.CosineSimilarity(together[3], _model.Embed(["x"])[0]), 6);
    }

    [Fact]
    public void EmptyOrOverlongTextsAreRefusedByNumber()
    {
        var empty = Assert.Throws<InvalidRequestException>(() => _model.Embed(["ok", ""], addBos: false));
        Assert.Contains("text 1 is empty", empty.Message);
        var tooLong = Assert.Throws<InvalidRequestException>(() => _model.Embed([new string('a', 40 * _model.ContextLength)]));
        Assert.Contains("text 0 has", tooLong.Message);
        Assert.Empty(_model.Embed([]));
    }
}
