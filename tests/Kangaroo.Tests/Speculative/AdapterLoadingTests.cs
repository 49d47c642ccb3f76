using Kangaroo.Backends.Cpu;
using Kangaroo.Model;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Speculative;

public class AdapterLoadingTests
{
    private static (TestDirectory Dir, CpuBackend Backend, LlamaModel Model) LoadModel(TinyModelSpec spec)
    {
        var dir = new TestDirectory();
        TinyModelFactory.Write(spec, dir.Combine("model"));
        var backend = new CpuBackend();
        return (dir, backend, LlamaModel.Load(dir.Combine("model"), backend));
    }

    [Fact]
    public void AdapterOfAnotherHiddenSizeIsRefused()
    {
        var (dir, backend, model) = LoadModel(TinyModelSpec.Gqa);
        using (dir) using (backend) using (model)
        {
            var other = TinyModelSpec.Gqa with { Hidden = 48 };
            TinyAdapterFactory.Write(other, dir.Combine("adapter"), TinyAdapterFactory.RandomWeights(other, 1));
            var e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("adapter"), model));
            Assert.Contains("hidden_size 48 does not match the base model's 32", e.Message);
        }
    }

    [Fact]
    public void AdapterOfAnotherVocabularyIsRefused()
    {
        var (dir, backend, model) = LoadModel(TinyModelSpec.Gqa);
        using (dir) using (backend) using (model)
        {
            var other = TinyModelSpec.Gqa with { Vocab = 50 };
            TinyAdapterFactory.Write(other, dir.Combine("adapter"), TinyAdapterFactory.RandomWeights(other, 1));
            var e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("adapter"), model));
            Assert.Contains("vocab_size 50 does not match the base model's 96", e.Message);
        }
    }

    [Fact]
    public void AdapterFollowsItsBaseModelsHeadNorms()
    {
        var qwen3 = TinyModelSpec.Qwen3;
        var (dir, backend, model) = LoadModel(qwen3);
        using (dir) using (backend) using (model)
        {
            // A Qwen3 adapter (with q_norm / k_norm) loads and drafts over the Qwen3 base.
            TinyAdapterFactory.Write(qwen3, dir.Combine("qwen3"), TinyAdapterFactory.RandomWeights(qwen3, 1));
            using (var adapter = KangarooAdapter.Load(dir.Combine("qwen3"), model))
                Assert.True(adapter.Config.QueryKeyNorm);

            // A Llama-layout adapter of the same shape is refused by name, and so is a Qwen3 one missing a head norm.
            var llama = qwen3 with { QueryKeyNorm = false };
            TinyAdapterFactory.Write(llama, dir.Combine("llama"), TinyAdapterFactory.RandomWeights(llama, 1));
            var e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("llama"), model));
            Assert.Contains("adapter model_type \"llama\" does not normalize query and key heads, but the base model (\"qwen3\") does", e.Message);

            var weights = TinyAdapterFactory.RandomWeights(qwen3, 1);
            TinyAdapterFactory.Write(qwen3, dir.Combine("partial"), weights);
            var partial = new Kangaroo.Weights.SafeTensorsWriter();
            foreach (var (name, shape) in TinyAdapterFactory.Shapes(qwen3).Where(t => t.Name != "layers.0.self_attn.k_norm.weight"))
                partial.Add(name, Kangaroo.Weights.DType.F32, shape, weights[name]);
            partial.WriteTo(dir.Combine("partial", "model.safetensors"));
            e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("partial"), model));
            Assert.Contains("layers.0.self_attn.k_norm.weight", e.Message);
        }
    }

    [Fact]
    public void AdapterWithOtherHeadsHasMisshapenTensorsNamed()
    {
        var (dir, backend, model) = LoadModel(TinyModelSpec.Gqa);
        using (dir) using (backend) using (model)
        {
            TinyAdapterFactory.Write(TinyModelSpec.Gqa, dir.Combine("adapter"), TinyAdapterFactory.RandomWeights(TinyModelSpec.Gqa, 1));
            string config = dir.Combine("adapter", "config.json");
            File.WriteAllText(config, File.ReadAllText(config).Replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4"));
            var e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("adapter"), model));
            Assert.Contains("layers.0.self_attn.k_proj.weight", e.Message);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(9)]
    public void RecordedExitLayerOutsideTheModelIsRefused(int exitLayer)
    {
        var (dir, backend, model) = LoadModel(TinyModelSpec.Gqa);
        using (dir) using (backend) using (model)
        {
            TinyAdapterFactory.Write(TinyModelSpec.Gqa, dir.Combine("adapter"), TinyAdapterFactory.RandomWeights(TinyModelSpec.Gqa, 1), exitLayer);
            var e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("adapter"), model));
            Assert.Contains($"exit_layer {exitLayer} is outside [1, 1]", e.Message);
        }
    }

    [Fact]
    public void MissingAdapterFilesAreNamed()
    {
        var (dir, backend, model) = LoadModel(TinyModelSpec.Gqa);
        using (dir) using (backend) using (model)
        {
            var e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("nope"), model));
            Assert.Contains("adapter directory not found", e.Message);
            Directory.CreateDirectory(dir.Combine("empty"));
            e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("empty"), model));
            Assert.Contains("config.json", e.Message);
            TinyAdapterFactory.Write(TinyModelSpec.Gqa, dir.Combine("noweights"), TinyAdapterFactory.RandomWeights(TinyModelSpec.Gqa, 1));
            File.Delete(dir.Combine("noweights", "model.safetensors"));
            e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(dir.Combine("noweights"), model));
            Assert.Contains("expected model.safetensors or pytorch_model.bin", e.Message);
        }
    }

    [Theory]
    [InlineData(0, 6, 0.6f, "exit layer must be in [1, 1]")]
    [InlineData(2, 6, 0.6f, "exit layer must be in [1, 1]")]
    [InlineData(1, 0, 0.6f, "draft steps must be at least 1")]
    [InlineData(1, 6, -0.1f, "threshold must be in [0, 1]")]
    [InlineData(1, 6, 1.5f, "threshold must be in [0, 1]")]
    public void InvalidSettingsAreRejected(int exitLayer, int steps, float threshold, string message)
    {
        var e = Assert.Throws<InvalidRequestException>(() => TinyAdapterFactory.Options(exitLayer, steps, threshold).Validate(2));
        Assert.Contains(message, e.Message);
    }
}
