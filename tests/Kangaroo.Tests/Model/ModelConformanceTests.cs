using Kangaroo.Backends;
using Kangaroo.Backends.Cpu;
using Kangaroo.Model;
using Kangaroo.Tests.TinyModels;
using Kangaroo.Tests.Reference;
using Xunit;

namespace Kangaroo.Tests.Model;

/// <summary>
/// A backend's full forward pass against the independent double-precision reference, and row invariance end to end.
/// Every backend runs it: <see cref="CpuModelTests"/> here, the GPU backends where a GPU is present (skipped elsewhere).
/// </summary>
public abstract class ModelConformanceTests
{
    protected abstract IComputeBackend CreateBackend();

    /// <summary>Why the backend cannot run here, or null; non-null skips every test.</summary>
    protected virtual string? UnavailableReason => null;

    /// <summary>Bound on max |logit error| / max |logit|: F32 arithmetic, plus F16 rounding where the KV cache is F16.</summary>
    protected virtual double LogitTolerance => 1e-5;

    private IComputeBackend Backend()
    {
        if (UnavailableReason is { } reason) Assert.Skip(reason);
        return CreateBackend();
    }

    private static readonly int[] Tokens = [1, 17, 42, 5, 88, 3, 60, 17, 9, 71, 2, 33];

    [Theory]
    [MemberData(nameof(TinyModelSpec.PresetNames), MemberType = typeof(TinyModelSpec))]
    public void LogitsMatchTheNaiveReference(string preset)
    {
        var spec = TinyModelSpec.Preset(preset);
        using var dir = new TestDirectory();
        var tiny = TinyModelFactory.Write(spec, dir.Path);
        using var backend = Backend();
        using var model = LlamaModel.Load(dir.Path, backend);
        if (spec.SlidingWindow is int window && !backend.SupportsSlidingWindow)
        {
            // Refused past the window rather than computed as full attention.
            var e = Assert.Throws<ModelFormatException>(() => model.EvaluateLogits(Tokens));
            Assert.Contains($"sliding_window is {window}", e.Message);
            return;
        }

        float[] logits = model.EvaluateLogits(Tokens);
        double[][] expected = new NaiveLlama(tiny.Config, tiny.Lookup).Logits(Tokens);
        int vocab = spec.Vocab;
        for (int t = 0; t < Tokens.Length; t++)
        {
            double maxError = 0, maxMagnitude = 0;
            for (int v = 0; v < vocab; v++)
            {
                maxError = Math.Max(maxError, Math.Abs(logits[t * vocab + v] - expected[t][v]));
                maxMagnitude = Math.Max(maxMagnitude, Math.Abs(expected[t][v]));
            }
            // Weights are identical in both (the reference reads the stored, rounded values), so F16/BF16 models are held
            // to the F32 bound: only F32 accumulation and F32 rotary angles separate the two.
            Assert.True(maxError <= LogitTolerance * maxMagnitude, $"{preset} position {t}: max |error| {maxError:E3} vs max |logit| {maxMagnitude:F3}");
        }
    }

    [Theory]
    [InlineData("Gqa")]
    [InlineData("BF16")]
    [InlineData("Deep")]
    public void EveryRowIsBitIdenticalWhateverTheCallSize(string preset)
    {
        var spec = TinyModelSpec.Preset(preset);
        using var dir = new TestDirectory();
        TinyModelFactory.Write(spec, dir.Path);
        using var backend = Backend();
        using var model = LlamaModel.Load(dir.Path, backend);
        int vocab = spec.Vocab;
        float[] allAtOnce = model.EvaluateLogits(Tokens);

        foreach (int chunk in new[] { 1, 2, 5 })
        {
            using var cache = model.CreateCache(Tokens.Length);
            using var ws = model.CreateWorkspace(chunk);
            var row = new float[vocab * chunk];
            for (int start = 0; start < Tokens.Length; start += chunk)
            {
                int rows = Math.Min(chunk, Tokens.Length - start);
                model.Embed(ws, Tokens.AsSpan(start, rows), start);
                model.RunLayers(ws, cache, 0, spec.Layers, rows);
                model.ComputeLogits(ws, 0, rows);
                cache.Advance(rows);
                backend.Download(ws.Logits, 0, row.AsSpan(0, rows * vocab));
                for (int i = 0; i < rows * vocab; i++)
                {
                    Assert.True(BitConverter.SingleToInt32Bits(row[i]) == BitConverter.SingleToInt32Bits(allAtOnce[start * vocab + i]),
                        $"chunk {chunk}: position {start + i / vocab} differs from the one-call pass");
                }
            }
        }
    }

    [Fact]
    public void SplittingTheLayersAtAnyPointChangesNoBits()
    {
        var spec = TinyModelSpec.Deep;
        using var dir = new TestDirectory();
        TinyModelFactory.Write(spec, dir.Path);
        using var backend = Backend();
        using var model = LlamaModel.Load(dir.Path, backend);
        float[] whole = model.EvaluateLogits(Tokens);
        for (int split = 1; split < spec.Layers; split++)
        {
            using var cache = model.CreateCache(Tokens.Length);
            using var ws = model.CreateWorkspace(Tokens.Length);
            model.Embed(ws, Tokens, 0);
            model.RunLayers(ws, cache, 0, split, Tokens.Length);
            model.RunLayers(ws, cache, split, spec.Layers, Tokens.Length);
            model.ComputeLogits(ws, 0, Tokens.Length);
            var logits = new float[whole.Length];
            backend.Download(ws.Logits, 0, logits);
            Assert.Equal(whole, logits);
        }
    }

    /// <summary>
    /// Decoding step by step (recorded and replayed where the backend records passes) picks, at every position, the
    /// argmax of one teacher-forced pass over the whole sequence: row invariance end to end, through the decoder.
    /// </summary>
    [Theory]
    [InlineData("Gqa")]
    [InlineData("F16")]
    public void GreedyDecodingMatchesOneTeacherForcedPass(string preset)
    {
        var spec = TinyModelSpec.Preset(preset);
        using var dir = new TestDirectory();
        TinyModelFactory.Write(spec, dir.Path);
        using var backend = Backend();
        using var model = LlamaModel.Load(dir.Path, backend);
        int[] prompt = [1, 5, 9, 2];
        using var scheduler = Speculative.DecoderHarness.Scheduler(model, null, null, 1, 64, prefillChunk: 3);
        int[] generated = Speculative.DecoderHarness.Decode(scheduler, prompt, 40);

        int[] sequence = [.. prompt, .. generated[..^1]];
        float[] logits = model.EvaluateLogits(sequence);
        for (int i = 0; i < generated.Length; i++)
        {
            int position = prompt.Length - 1 + i;
            Assert.Equal(Kangaroo.Sampling.TokenSampler.Argmax(logits.AsSpan(position * spec.Vocab, spec.Vocab)), generated[i]);
        }
    }

    [Fact]
    public void MissingOrMisshapenTensorsAreNamed()
    {
        var spec = TinyModelSpec.Gqa;
        using var dir = new TestDirectory();
        var weights = TinyModelFactory.CreateWeights(spec);
        TinyModelFactory.Write(spec, dir.Path, weights);
        // Claim a larger FFN in config.json than the tensors have: the config field is the cause, named with its evidence.
        string configPath = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"intermediate_size\": 64", "\"intermediate_size\": 96"));
        using var backend = Backend();
        var e = Assert.Throws<ModelFormatException>(() => LlamaModel.Load(dir.Path, backend));
        Assert.Equal(configPath, e.Path);
        Assert.Contains("intermediate_size is 96", e.Message);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e.Message);
        Assert.Contains("[64, 32]", e.Message);
    }
}

public sealed class CpuModelTests : ModelConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CpuBackend();
}
