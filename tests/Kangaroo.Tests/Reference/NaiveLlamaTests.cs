using System.Numerics;
using Kangaroo.Model;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Reference;

/// <summary>Checks that the naive reference itself is right, piece by piece and end to end.</summary>
public sealed class NaiveLlamaTests
{
    private static readonly int[] Prompt = [1, 17, 5, 42, 9, 63, 0, 23, 88, 4, 31];

    private static (LlamaConfig Config, Dictionary<string, float[]> Weights) Make(TinyModelSpec spec)
    {
        var weights = TinyModelFactory.CreateWeights(spec);
        foreach (var key in weights.Keys.ToList()) weights[key] = TinyModelFactory.RoundTo(spec.DType, weights[key]);
        return (TinyModelFactory.ToConfig(spec), weights);
    }

    private static NaiveLlama Model(LlamaConfig config, Dictionary<string, float[]> weights) =>
        new(config, TinyModelFactory.LookupFrom(weights));

    private static void AssertClose(double expected, double actual, double tolerance, string what)
    {
        double err = Math.Abs(expected - actual);
        Assert.True(err <= tolerance * Math.Max(1.0, Math.Abs(expected)), $"{what}: expected {expected:R}, got {actual:R} (error {err:E3})");
    }

    private static void AssertClose(double[] expected, double[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) AssertClose(expected[i], actual[i], tolerance, $"{what}[{i}]");
    }

    private static double[] HandRmsNorm(double[] x, float[] w, double eps)
    {
        double ms = x.Select(e => e * e).Average();
        return [.. x.Select((e, i) => e / Math.Sqrt(ms + eps) * w[i])];
    }

    private static double[] HandMatVec(float[] w, int outDim, double[] x)
    {
        int inDim = x.Length;
        Assert.Equal(outDim * inDim, w.Length);
        return [.. Enumerable.Range(0, outDim).Select(o => Enumerable.Range(0, inDim).Sum(i => (double)w[o * inDim + i] * x[i]))];
    }

    private static double[] Embedding(float[] embed, int hidden, int token) =>
        [.. Enumerable.Range(0, hidden).Select(j => (double)embed[token * hidden + j])];

    // ---- Whole-model properties ----

    [Theory]
    [InlineData("Gqa")]
    [InlineData("TiedEmbeddings")]
    [InlineData("ExplicitHeadDim")]
    [InlineData("OddVocab")]
    public void ZeroedOutputProjections_LogitsAreHeadTimesNormedEmbedding(string preset)
    {
        var spec = TinyModelSpec.Preset(preset);
        var (config, weights) = Make(spec);
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            Array.Clear(weights[$"model.layers.{layer}.self_attn.o_proj.weight"]);
            Array.Clear(weights[$"model.layers.{layer}.mlp.down_proj.weight"]);
        }
        var model = Model(config, weights);
        int[] tokens = [.. Prompt.Select(t => t % config.VocabSize)];
        double[][] logits = model.Logits(tokens);

        float[] head = weights[spec.Tied ? "model.embed_tokens.weight" : "lm_head.weight"];
        Assert.Equal(spec.Tied, !weights.ContainsKey("lm_head.weight"));
        for (int t = 0; t < tokens.Length; t++)
        {
            double[] e = Embedding(weights["model.embed_tokens.weight"], config.HiddenSize, tokens[t]);
            double[] expected = HandMatVec(head, config.VocabSize, HandRmsNorm(e, weights["model.norm.weight"], config.RmsNormEps));
            AssertClose(expected, logits[t], 1e-12, $"logits[{t}]");
        }
    }

    [Theory]
    [InlineData("Mha")]
    [InlineData("Gqa")]
    [InlineData("Llama3Rope")]
    public void LogitsAtEarlierPositions_DoNotDependOnLaterTokens(string preset)
    {
        var (config, weights) = Make(TinyModelSpec.Preset(preset));
        var model = Model(config, weights);
        int[] a = [.. Prompt.Select(t => t % config.VocabSize)];
        int[] b = [.. a];
        const int changedFrom = 6;
        for (int t = changedFrom; t < b.Length; t++) b[t] = (b[t] + 7) % config.VocabSize;
        double[][] la = model.Logits(a), lb = model.Logits(b);
        for (int t = 0; t < changedFrom; t++) Assert.Equal(la[t], lb[t]);
        Assert.NotEqual(la[changedFrom], lb[changedFrom]);

        // A prefix gives the same logits as the full sequence at its positions.
        double[][] prefix = model.Logits(a[..4]);
        for (int t = 0; t < 4; t++) Assert.Equal(la[t], prefix[t]);
    }

    [Theory]
    [InlineData("Gqa")]
    [InlineData("Mqa")]
    public void GroupedQueryAttention_EqualsMhaWithDuplicatedKeyValueHeads(string preset)
    {
        var spec = TinyModelSpec.Preset(preset);
        var (config, weights) = Make(spec);
        var mhaConfig = config with { NumKvHeads = config.NumHeads };
        var mhaWeights = new Dictionary<string, float[]>(weights);
        int d = config.HeadDim, hidden = config.HiddenSize, group = config.GroupSize;
        Assert.True(group > 1);
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            foreach (string proj in new[] { "k_proj", "v_proj" })
            {
                string name = $"model.layers.{layer}.self_attn.{proj}.weight";
                float[] gqa = weights[name];
                var mha = new float[config.NumHeads * d * hidden];
                for (int h = 0; h < config.NumHeads; h++)
                    Array.Copy(gqa, h / group * d * hidden, mha, h * d * hidden, d * hidden);
                mhaWeights[name] = mha;
            }
        }
        double[][] expected = Model(mhaConfig, mhaWeights).Logits(Prompt);
        double[][] actual = Model(config, weights).Logits(Prompt);
        for (int t = 0; t < Prompt.Length; t++) AssertClose(expected[t], actual[t], 1e-12, $"logits[{t}]");
    }

    [Fact]
    public void HiddenStates_ZeroLayersAreEmbeddings_AllLayersGiveTheLogits()
    {
        var (config, weights) = Make(TinyModelSpec.Deep);
        var model = Model(config, weights);
        double[][] x0 = model.HiddenStatesAfterLayer(Prompt, 0);
        for (int t = 0; t < Prompt.Length; t++)
            Assert.Equal(Embedding(weights["model.embed_tokens.weight"], config.HiddenSize, Prompt[t]), x0[t]);

        double[][] last = model.HiddenStatesAfterLayer(Prompt, config.NumLayers);
        double[][] logits = model.Logits(Prompt);
        for (int t = 0; t < Prompt.Length; t++)
        {
            double[] expected = HandMatVec(weights["lm_head.weight"], config.VocabSize,
                HandRmsNorm(last[t], weights["model.norm.weight"], config.RmsNormEps));
            AssertClose(expected, logits[t], 1e-12, $"logits[{t}]");
        }
        // Layers change the stream, one at a time.
        for (int l = 1; l <= config.NumLayers; l++)
            Assert.NotEqual(model.HiddenStatesAfterLayer(Prompt, l - 1)[3], model.HiddenStatesAfterLayer(Prompt, l)[3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.HiddenStatesAfterLayer(Prompt, config.NumLayers + 1));
    }

    [Fact]
    public void SingleToken_AttentionOutputIsTheValue_EndToEnd()
    {
        // One layer, MLP silenced: x1 = e + o_proj · concat_h v[h / group], v = v_proj · rmsnorm(e).
        var spec = TinyModelSpec.Gqa with { Layers = 1 };
        var (config, weights) = Make(spec);
        Array.Clear(weights["model.layers.0.mlp.down_proj.weight"]);
        var model = Model(config, weights);
        const int token = 37;
        double[] x1 = model.HiddenStatesAfterLayer([token], 1)[0];

        int d = config.HeadDim;
        double[] e = Embedding(weights["model.embed_tokens.weight"], config.HiddenSize, token);
        double[] n = HandRmsNorm(e, weights["model.layers.0.input_layernorm.weight"], config.RmsNormEps);
        double[] v = HandMatVec(weights["model.layers.0.self_attn.v_proj.weight"], config.KvWidth, n);
        var concat = new double[config.QueryWidth];
        for (int h = 0; h < config.NumHeads; h++)
            for (int i = 0; i < d; i++) concat[h * d + i] = v[h / config.GroupSize * d + i];
        double[] o = HandMatVec(weights["model.layers.0.self_attn.o_proj.weight"], config.HiddenSize, concat);
        AssertClose([.. e.Select((x, j) => x + o[j])], x1, 1e-12, "x1");
    }

    [Fact]
    public void TwoTokens_OneLayer_MatchesAHandComputationWithComplexRope()
    {
        // An independent formulation: RoPE as multiplication of z_i = x_i + i·x_{i+d/2} by e^{i·pos·f_i};
        // attention written as explicit two-way softmax; MLP computed by hand.
        var spec = TinyModelSpec.Llama3Rope with { Layers = 1 };
        var (config, weights) = Make(spec);
        var model = Model(config, weights);
        int[] tokens = [5, 77, 12];
        double[][] actual = model.HiddenStatesAfterLayer(tokens, 1);

        int d = config.HeadDim, half = d / 2, hidden = config.HiddenSize;
        double[] f = ExpectedLlama3InvFreq(d, config.RopeTheta, config.RopeScaling!);
        string p = "model.layers.0.";
        var q = new double[tokens.Length][]; var k = new double[tokens.Length][]; var v = new double[tokens.Length][];
        var e = new double[tokens.Length][];
        for (int t = 0; t < tokens.Length; t++)
        {
            e[t] = Embedding(weights["model.embed_tokens.weight"], hidden, tokens[t]);
            double[] n = HandRmsNorm(e[t], weights[p + "input_layernorm.weight"], config.RmsNormEps);
            q[t] = ComplexRope(HandMatVec(weights[p + "self_attn.q_proj.weight"], config.QueryWidth, n), d, t, f);
            k[t] = ComplexRope(HandMatVec(weights[p + "self_attn.k_proj.weight"], config.KvWidth, n), d, t, f);
            v[t] = HandMatVec(weights[p + "self_attn.v_proj.weight"], config.KvWidth, n);
        }
        for (int t = 0; t < tokens.Length; t++)
        {
            var concat = new double[config.QueryWidth];
            for (int h = 0; h < config.NumHeads; h++)
            {
                int kv = h / config.GroupSize;
                var w = new double[t + 1];
                for (int s = 0; s <= t; s++)
                    w[s] = Math.Exp(Enumerable.Range(0, d).Sum(i => q[t][h * d + i] * k[s][kv * d + i]) / Math.Sqrt(d));
                double z = w.Sum();
                for (int i = 0; i < d; i++)
                    concat[h * d + i] = Enumerable.Range(0, t + 1).Sum(s => w[s] / z * v[s][kv * d + i]);
            }
            double[] attn = HandMatVec(weights[p + "self_attn.o_proj.weight"], hidden, concat);
            double[] h1 = [.. e[t].Select((x, j) => x + attn[j])];
            double[] n2 = HandRmsNorm(h1, weights[p + "post_attention_layernorm.weight"], config.RmsNormEps);
            double[] gate = HandMatVec(weights[p + "mlp.gate_proj.weight"], config.IntermediateSize, n2);
            double[] up = HandMatVec(weights[p + "mlp.up_proj.weight"], config.IntermediateSize, n2);
            double[] act = [.. gate.Select((g, j) => g / (1 + Math.Exp(-g)) * up[j])];
            double[] down = HandMatVec(weights[p + "mlp.down_proj.weight"], hidden, act);
            AssertClose([.. h1.Select((x, j) => x + down[j])], actual[t], 1e-11, $"x1[{t}]");
        }

        static double[] ComplexRope(double[] x, int d, int pos, double[] f)
        {
            int half = d / 2;
            var y = new double[x.Length];
            for (int h = 0; h < x.Length / d; h++)
                for (int i = 0; i < half; i++)
                {
                    var z = new Complex(x[h * d + i], x[h * d + half + i]) * Complex.FromPolarCoordinates(1, pos * f[i]);
                    y[h * d + i] = z.Real;
                    y[h * d + half + i] = z.Imaginary;
                }
            return y;
        }
        Assert.Equal(half, f.Length);
    }

    [Theory]
    [MemberData(nameof(TinyModelSpec.PresetNames), MemberType = typeof(TinyModelSpec))]
    public void Presets_GiveFiniteLogitsOfUsefulSpread(string preset)
    {
        var (config, weights) = Make(TinyModelSpec.Preset(preset));
        int[] tokens = [.. Prompt.Select(t => t % config.VocabSize)];
        double[][] logits = Model(config, weights).Logits(tokens);
        Assert.Equal(tokens.Length, logits.Length);
        foreach (double[] row in logits)
        {
            Assert.Equal(config.VocabSize, row.Length);
            Assert.All(row, x => Assert.True(double.IsFinite(x)));
            double mean = row.Average();
            double std = Math.Sqrt(row.Sum(x => (x - mean) * (x - mean)) / row.Length);
            Assert.InRange(std, 0.5, 8.0);
            var sorted = row.OrderDescending().ToArray();
            Assert.True(sorted[0] - sorted[1] > 1e-4, "top two logits (nearly) tie");
        }
    }

    // ---- Attention ----

    [Fact]
    public void CausalAttention_SingleTokenReturnsValueExactly()
    {
        double[][] q = [[0.3, -1.2, 2.0, 0.1]], k = [[5.0, 1.0, -2.0, 0.7]], v = [[0.1, 0.2, -0.3, 1e-7]];
        Assert.Equal(v[0], NaiveLlama.CausalAttention(q, k, v)[0]);
    }

    [Fact]
    public void CausalAttention_IsAScaledSoftmaxOverThePast()
    {
        double[][] q = [[1, 0], [2, 0], [0, 1]];
        double[][] k = [[1, 0], [0, 0], [3, 3]];
        double[][] v = [[1, 0], [0, 1], [5, 5]];
        double[][] o = NaiveLlama.CausalAttention(q, k, v);
        Assert.Equal(v[0], o[0]);
        // Position 1: scores 2/sqrt2 and 0.
        double w0 = Math.Exp(2 / Math.Sqrt(2)), w1 = 1;
        AssertClose([w0 / (w0 + w1), w1 / (w0 + w1)], o[1], 1e-15, "o[1]");
        // Position 2: scores 0, 0, 3/sqrt2.
        double a = 1, c = Math.Exp(3 / Math.Sqrt(2)), z = a + a + c;
        AssertClose([(a * 1 + c * 5) / z, (a * 1 + c * 5) / z], o[2], 1e-14, "o[2]");
        // Identical keys: the mean of the values.
        double[][] same = NaiveLlama.CausalAttention([[1, 2], [1, 2], [1, 2]], [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], v);
        AssertClose([2.0, 2.0], same[2], 1e-15, "mean");
    }

    // ---- RoPE ----

    [Fact]
    public void Rope_PositionZeroIsIdentity_RotationsPreserveNorms_RelativePositionOnly()
    {
        var rng = new Random(5);
        double[] invFreq = NaiveLlama.InverseFrequencies(16, 10000, null);
        double[] x = [.. Enumerable.Range(0, 16).Select(_ => rng.NextDouble() * 2 - 1)];
        double[] y = [.. Enumerable.Range(0, 16).Select(_ => rng.NextDouble() * 2 - 1)];
        Assert.Equal(x, NaiveLlama.Rope(x, 0, invFreq));
        double norm = Math.Sqrt(x.Sum(e => e * e));
        foreach (int pos in new[] { 1, 2, 7, 100, 4095 })
        {
            double[] r = NaiveLlama.Rope(x, pos, invFreq);
            AssertClose(norm, Math.Sqrt(r.Sum(e => e * e)), 1e-14, $"norm at {pos}");
        }
        static double Dot(double[] a, double[] b) => a.Zip(b, (p, q) => p * q).Sum();
        double reference = Dot(NaiveLlama.Rope(x, 9, invFreq), NaiveLlama.Rope(y, 4, invFreq));
        AssertClose(reference, Dot(NaiveLlama.Rope(x, 25, invFreq), NaiveLlama.Rope(y, 20, invFreq)), 1e-12, "relative");
        AssertClose(reference, Dot(NaiveLlama.Rope(x, 5, invFreq), NaiveLlama.Rope(y, 0, invFreq)), 1e-12, "relative");
    }

    [Fact]
    public void Rope_UsesRotateHalfPairing()
    {
        // head_dim 4: element 0 pairs with 2 (frequency 1), element 1 with 3 (frequency theta^-1/2).
        double[] invFreq = NaiveLlama.InverseFrequencies(4, 10000, null);
        AssertClose([1.0, 0.01], invFreq, 1e-15, "inv_freq");
        const int pos = 3;
        double[] r = NaiveLlama.Rope([1, 0, 0, 0], pos, invFreq);
        AssertClose([Math.Cos(pos), 0, Math.Sin(pos), 0], r, 1e-15, "e0");
        r = NaiveLlama.Rope([0, 0, 1, 0], pos, invFreq);
        AssertClose([-Math.Sin(pos), 0, Math.Cos(pos), 0], r, 1e-15, "e2");
        r = NaiveLlama.Rope([0, 1, 0, 0], pos, invFreq);
        AssertClose([0, Math.Cos(pos * 0.01), 0, Math.Sin(pos * 0.01)], r, 1e-15, "e1");
    }

    /// <summary>HF _compute_llama3_parameters, transcribed band by band (independently of NaiveLlama's loop).</summary>
    private static double[] ExpectedLlama3InvFreq(int headDim, double theta, RopeScaling s)
    {
        var result = new double[headDim / 2];
        for (int i = 0; i < result.Length; i++)
        {
            double f = Math.Pow(theta, -(2.0 * i) / headDim);
            double wavelen = 2 * Math.PI / f;
            double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            if (wavelen < highWavelen) result[i] = f;
            else if (wavelen > lowWavelen) result[i] = f / s.Factor;
            else
            {
                double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                result[i] = (1 - smooth) * f / s.Factor + smooth * f;
            }
        }
        return result;
    }

    [Fact]
    public void Llama3Scaling_KeepsHighFrequencies_DividesLowOnes_InterpolatesBetween()
    {
        // Llama 3.1 8B: theta 500000, head_dim 128, factor 8, low 1, high 4, original 8192.
        var s = new RopeScaling("llama3", 8, 1, 4, 8192);
        double[] plain = NaiveLlama.InverseFrequencies(128, 500000, null);
        double[] scaled = NaiveLlama.InverseFrequencies(128, 500000, s);
        AssertClose(ExpectedLlama3InvFreq(128, 500000, s), scaled, 1e-15, "inv_freq");
        int high = 0, low = 0, medium = 0;
        for (int i = 0; i < 64; i++)
        {
            double wavelen = 2 * Math.PI / plain[i];
            if (wavelen < 8192 / 4.0) { Assert.Equal(plain[i], scaled[i]); high++; }
            else if (wavelen > 8192 / 1.0) { AssertClose(plain[i] / 8, scaled[i], 1e-15, $"low {i}"); low++; }
            else { Assert.InRange(scaled[i], plain[i] / 8, plain[i]); medium++; }
            if (i > 0) Assert.True(scaled[i] < scaled[i - 1], "scaled frequencies stay decreasing");
        }
        Assert.True(high > 0 && low > 0 && medium > 0, $"bands {high}/{medium}/{low}");
        Assert.Equal(1.0, scaled[0]);

        // The tiny preset exercises all three bands too: 0 high, 1 medium, 2.. low.
        var spec = TinyModelSpec.Llama3Rope;
        double[] tinyPlain = NaiveLlama.InverseFrequencies(spec.EffectiveHeadDim, spec.RopeTheta, null);
        double[] tiny = NaiveLlama.InverseFrequencies(spec.EffectiveHeadDim, spec.RopeTheta, spec.RopeScaling);
        Assert.Equal(tinyPlain[0], tiny[0]);
        Assert.True(tiny[1] > tinyPlain[1] / 8 * 1.01 && tiny[1] < tinyPlain[1] * 0.99, "frequency 1 in the smooth band");
        for (int i = 2; i < tiny.Length; i++) AssertClose(tinyPlain[i] / 8, tiny[i], 1e-15, $"tiny low {i}");
        var model = new NaiveLlama(TinyModelFactory.ToConfig(spec), _ => throw new InvalidOperationException());
        Assert.Equal(tiny, model.InvFreq.ToArray());
    }

    [Fact]
    public void RmsNormAndSilu_MatchTheirDefinitions()
    {
        double[] y = NaiveLlama.RmsNorm([3, 4], [1f, 2f], 0);
        double rms = Math.Sqrt((9 + 16) / 2.0);
        AssertClose([3 / rms, 8 / rms], y, 1e-15, "rmsnorm");
        y = NaiveLlama.RmsNorm([0, 0], [1f, 1f], 1e-5);
        Assert.Equal([0.0, 0.0], y);
        AssertClose(0.0, NaiveLlama.Silu(0), 0, "silu(0)");
        AssertClose(1 / (1 + Math.Exp(-1)), NaiveLlama.Silu(1), 1e-16, "silu(1)");
        AssertClose(-2 / (1 + Math.Exp(2)), NaiveLlama.Silu(-2), 1e-16, "silu(-2)");
    }

    [Fact]
    public void WrongWeightShapes_AreRefusedByName()
    {
        var (config, weights) = Make(TinyModelSpec.Gqa);
        weights["model.layers.1.self_attn.k_proj.weight"] = new float[config.QueryWidth * config.HiddenSize];
        var e = Assert.Throws<InvalidOperationException>(() => Model(config, weights).Logits([1, 2]));
        Assert.Contains("model.layers.1.self_attn.k_proj.weight", e.Message);
    }
}
