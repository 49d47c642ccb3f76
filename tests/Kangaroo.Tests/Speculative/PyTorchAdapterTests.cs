using System.Text.Json;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Model;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Speculative;

/// <summary>
/// Adapters in the official release layout (config.json + pytorch_model.bin, no exit_layer recorded) load for a base
/// model of their shape and decode losslessly; they behave exactly like the same values stored as safetensors.
/// </summary>
public sealed class PyTorchAdapterTests : IDisposable
{
    /// <summary>The fixtures' shape: hidden 32, 4 heads, 4 kv heads, vocab 64; three base layers.</summary>
    private static readonly TinyModelSpec Spec = new()
    {
        Name = "pytorch-adapter-base", Hidden = 32, Intermediate = 64, Layers = 3, Heads = 4, KvHeads = 4, Vocab = 64,
        MaxPositions = 128, Seed = 41,
    };

    private static readonly int[] Prompt = [1, 17, 5, 42, 9, 30];

    private readonly TestDirectory _dir = new("pt-adapter");
    private readonly CpuBackend _backend = new();
    private readonly LlamaModel _model;

    public PyTorchAdapterTests()
    {
        TinyModelFactory.Write(Spec, _dir.Combine("model"), AgreeingBaseWeights());
        _model = LlamaModel.Load(_dir.Combine("model"), _backend);
    }

    public void Dispose()
    {
        _model.Dispose();
        _backend.Dispose();
        _dir.Dispose();
    }

    /// <summary>
    /// Base weights the fixture adapter (exit layer 2) predicts well: layer 2 is an exact identity, the model's final norm
    /// is the adapter's, and large embeddings weigh on the residual stream, so the adapter's drafts are often accepted
    /// (about two in three) while still depending on its attention.
    /// </summary>
    private static Dictionary<string, float[]> AgreeingBaseWeights()
    {
        var weights = TinyAdapterFactory.NearIdentityDeepLayers(Spec, exitLayer: 2, deepScale: 0f);
        foreach (ref float w in weights["model.embed_tokens.weight"].AsSpan()) w *= 100f;
        weights["model.norm.weight"] = ExpectedTensors(FixtureDirectory("f32"))["norm.weight"].Values;
        return weights;
    }

    private static string FixtureDirectory(string dtype) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "pytorch", $"adapter_{dtype}");

    [Theory]
    [InlineData("f32")]
    [InlineData("f16")]
    [InlineData("bf16")]
    public void LoadsAndDecodesLikeVanillaGreedy(string dtype)
    {
        using var adapter = KangarooAdapter.Load(FixtureDirectory(dtype), _model);
        Assert.Null(adapter.RecordedExitLayer);
        Assert.Equal(32 + 4 * 32 * 32 + 32, adapter.ParameterCount);

        int[] vanilla = Vanilla(24);
        foreach (var options in new[] { Options(1, 4, 0f), Options(2, 6, 0.6f), Options(2, 3, 0f) })
        {
            var (tokens, stats) = Kangaroo(adapter, options, 24);
            Assert.Equal(vanilla, tokens);
            Assert.True(stats.Drafted > 0);
        }
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("f16")]
    [InlineData("bf16")]
    public void DraftsExactlyLikeTheSameValuesInSafeTensors(string dtype)
    {
        string copy = WriteSafeTensorsCopy(FixtureDirectory(dtype), _dir.Combine($"safetensors_{dtype}"));
        using var fromPyTorch = KangarooAdapter.Load(FixtureDirectory(dtype), _model);
        using var fromSafeTensors = KangarooAdapter.Load(copy, _model);
        var options = Options(2, 5, 0f);
        var (a, statsA) = Kangaroo(fromPyTorch, options, 20);
        var (b, statsB) = Kangaroo(fromSafeTensors, options, 20);
        Assert.Equal(b, a);
        Assert.Equal((statsB.Rounds, statsB.Drafted, statsB.Accepted), (statsA.Rounds, statsA.Drafted, statsA.Accepted));
        // The base model is built so that the adapter's drafts are often, not always, accepted: the counts depend on
        // every adapter tensor, as a copy with o_proj negated shows.
        Assert.True(statsA.Accepted * 2 > statsA.Drafted, $"accepted {statsA.Accepted} of {statsA.Drafted}");
        string tampered = WriteSafeTensorsCopy(FixtureDirectory(dtype), _dir.Combine($"tampered_{dtype}"), negate: "layers.0.self_attn.o_proj.weight");
        using var fromTampered = KangarooAdapter.Load(tampered, _model);
        var (_, statsC) = Kangaroo(fromTampered, options, 20);
        Assert.NotEqual((statsC.Rounds, statsC.Drafted, statsC.Accepted), (statsA.Rounds, statsA.Drafted, statsA.Accepted));
    }

    [Fact]
    public void BaseModelOfAnotherShapeIsRefused()
    {
        using var dir = new TestDirectory("pt-adapter-other");
        var other = Spec with { Hidden = 48, Heads = 4, KvHeads = 4 };
        TinyModelFactory.Write(other, dir.Path);
        using var model = LlamaModel.Load(dir.Path, _backend);
        var e = Assert.Throws<ModelFormatException>(() => KangarooAdapter.Load(FixtureDirectory("f32"), model));
        Assert.Contains("adapter hidden_size 32 does not match the base model's 48", e.Message);
    }

    private static KangarooOptions Options(int exit, int steps, float threshold) => TinyAdapterFactory.Options(exit, steps, threshold);

    private int[] Vanilla(int count)
    {
        using var scheduler = DecoderHarness.Scheduler(_model, null, null, 1, Prompt.Length + count + 1);
        return DecoderHarness.Decode(scheduler, Prompt, count);
    }

    private (int[] Tokens, SpeculativeStats Stats) Kangaroo(KangarooAdapter adapter, KangarooOptions options, int count)
    {
        using var scheduler = DecoderHarness.Scheduler(_model, adapter, options, 1, Prompt.Length + count + 1);
        return (DecoderHarness.Decode(scheduler, Prompt, count), scheduler.Stats(0)!);
    }

    /// <summary>The fixture's tensors as its expected.json gives them, converted to F32.</summary>
    private static Dictionary<string, (DType DType, int[] Shape, float[] Values)> ExpectedTensors(string fixture)
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture, "expected.json")));
        var tensors = new Dictionary<string, (DType, int[], float[])>(StringComparer.Ordinal);
        foreach (var t in expected.RootElement.GetProperty("tensors").EnumerateArray())
        {
            var dtype = Enum.Parse<DType>(t.GetProperty("dtype").GetString()!);
            int[] shape = t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray();
            byte[] bytes = Convert.FromBase64String(t.GetProperty("data_base64").GetString()!);
            var values = new float[bytes.Length / dtype.SizeInBytes()];
            DTypeConversion.ToFloat32(dtype, bytes, values);
            tensors[t.GetProperty("name").GetString()!] = (dtype, shape, values);
        }
        return tensors;
    }

    /// <summary>
    /// The fixture's tensors (from its expected.json) as model.safetensors beside a copy of its config.json; the tensor
    /// named <paramref name="negate"/>, if any, negated.
    /// </summary>
    private static string WriteSafeTensorsCopy(string fixture, string directory, string? negate = null)
    {
        Directory.CreateDirectory(directory);
        File.Copy(Path.Combine(fixture, "config.json"), Path.Combine(directory, "config.json"));
        var writer = new SafeTensorsWriter();
        foreach (var (name, (dtype, shape, values)) in ExpectedTensors(fixture)) writer.Add(name, dtype, shape, name == negate ? values.Select(v => -v).ToArray() : values);
        writer.WriteTo(Path.Combine(directory, "model.safetensors"));
        return directory;
    }
}
