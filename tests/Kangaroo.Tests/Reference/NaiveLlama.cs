using Kangaroo.Model;

namespace Kangaroo.Tests.Reference;

/// <summary>
/// A deliberately naive Llama forward pass for checking the engine: scalar loops, double precision, no cache,
/// full causal attention recomputed for every call. It follows Hugging Face <c>modeling_llama.py</c>
/// (LlamaForCausalLM) and <c>modeling_rope_utils.py</c> (default and "llama3" inverse frequencies) and shares
/// no code with the engine. Weights come from a lookup by Hugging Face tensor name (row-major F32 values;
/// PyTorch Linear weights are [out, in]).
/// </summary>
internal sealed class NaiveLlama
{
    private readonly Func<string, float[]> _lookup;
    private readonly Dictionary<string, float[]> _cache = new(StringComparer.Ordinal);
    private readonly double[] _invFreq;

    public NaiveLlama(LlamaConfig config, Func<string, float[]> weights)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        if (config.NumHeads % config.NumKvHeads != 0)
            throw new ArgumentException($"num_kv_heads {config.NumKvHeads} does not divide num_heads {config.NumHeads}");
        if (config.HeadDim % 2 != 0)
            throw new ArgumentException($"head_dim {config.HeadDim} is odd");
        Config = config;
        _lookup = weights;
        _invFreq = InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling);
    }

    public LlamaConfig Config { get; }

    /// <summary>The RoPE inverse frequencies this model uses (head_dim / 2 of them).</summary>
    public IReadOnlyList<double> InvFreq => _invFreq;

    /// <summary>Logits [position][vocab] for every position of <paramref name="tokens"/>.</summary>
    public double[][] Logits(IReadOnlyList<int> tokens)
    {
        var c = Config;
        double[][] x = HiddenStatesAfterLayer(tokens, c.NumLayers);
        float[] norm = W("model.norm.weight", c.HiddenSize);
        string headName = c.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
        float[] head = W(headName, (long)c.VocabSize * c.HiddenSize);
        var logits = new double[x.Length][];
        for (int t = 0; t < x.Length; t++)
            logits[t] = Linear(head, c.VocabSize, c.HiddenSize, RmsNorm(x[t], norm, c.RmsNormEps));
        return logits;
    }

    /// <summary>The final hidden states after the final norm (what the LM head multiplies), [position][hidden].</summary>
    public double[][] FinalNormedHiddenStates(IReadOnlyList<int> tokens)
    {
        var c = Config;
        double[][] x = HiddenStatesAfterLayer(tokens, c.NumLayers);
        float[] norm = W("model.norm.weight", c.HiddenSize);
        return [.. x.Select(row => RmsNorm(row, norm, c.RmsNormEps))];
    }

    /// <summary>
    /// The residual stream [position][hidden] after the first <paramref name="layerCount"/> decoder layers,
    /// before the final norm (0 gives the embeddings).
    /// </summary>
    public double[][] HiddenStatesAfterLayer(IReadOnlyList<int> tokens, int layerCount)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var c = Config;
        if (tokens.Count == 0) throw new ArgumentException("empty token sequence", nameof(tokens));
        if (layerCount < 0 || layerCount > c.NumLayers)
            throw new ArgumentOutOfRangeException(nameof(layerCount), layerCount, $"must be in [0, {c.NumLayers}]");

        float[] embed = W("model.embed_tokens.weight", (long)c.VocabSize * c.HiddenSize);
        var x = new double[tokens.Count][];
        for (int t = 0; t < tokens.Count; t++)
        {
            int id = tokens[t];
            if (id < 0 || id >= c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), id, "token id outside the vocabulary");
            x[t] = new double[c.HiddenSize];
            for (int j = 0; j < c.HiddenSize; j++) x[t][j] = embed[(long)id * c.HiddenSize + j];
        }
        for (int layer = 0; layer < layerCount; layer++) x = DecoderLayer(layer, x);
        return x;
    }

    private double[][] DecoderLayer(int layer, double[][] x)
    {
        var c = Config;
        string p = $"model.layers.{layer}.";
        int n = x.Length, hidden = c.HiddenSize, d = c.HeadDim;
        float[] inNorm = W(p + "input_layernorm.weight", hidden);
        float[] wq = W(p + "self_attn.q_proj.weight", (long)c.NumHeads * d * hidden);
        float[] wk = W(p + "self_attn.k_proj.weight", (long)c.NumKvHeads * d * hidden);
        float[] wv = W(p + "self_attn.v_proj.weight", (long)c.NumKvHeads * d * hidden);
        float[] wo = W(p + "self_attn.o_proj.weight", (long)hidden * c.NumHeads * d);
        float[] postNorm = W(p + "post_attention_layernorm.weight", hidden);
        float[] wGate = W(p + "mlp.gate_proj.weight", (long)c.IntermediateSize * hidden);
        float[] wUp = W(p + "mlp.up_proj.weight", (long)c.IntermediateSize * hidden);
        float[] wDown = W(p + "mlp.down_proj.weight", (long)hidden * c.IntermediateSize);
        // Qwen3Attention: q_norm / k_norm over each head's head_dim elements, after the projection, before RoPE.
        float[]? qNorm = c.QueryKeyNorm ? W(p + "self_attn.q_norm.weight", d) : null;
        float[]? kNorm = c.QueryKeyNorm ? W(p + "self_attn.k_norm.weight", d) : null;
        float[]? Bias(bool present, string name, long length) => present ? W(p + name, length) : null;
        float[]? qBias = Bias(c.QkvBias, "self_attn.q_proj.bias", c.NumHeads * d), kBias = Bias(c.QkvBias, "self_attn.k_proj.bias", c.NumKvHeads * d);
        float[]? vBias = Bias(c.QkvBias, "self_attn.v_proj.bias", c.NumKvHeads * d), oBias = Bias(c.OutputBias, "self_attn.o_proj.bias", hidden);
        float[]? gateBias = Bias(c.MlpBias, "mlp.gate_proj.bias", c.IntermediateSize), upBias = Bias(c.MlpBias, "mlp.up_proj.bias", c.IntermediateSize);
        float[]? downBias = Bias(c.MlpBias, "mlp.down_proj.bias", hidden);
        double[] HeadNormed(double[] projected, int head, float[]? norm) =>
            norm is null ? projected.AsSpan(head * d, d).ToArray() : RmsNorm(projected.AsSpan(head * d, d).ToArray(), norm, c.RmsNormEps);

        // Projections of the normalized input, split into heads, RoPE applied to q and k.
        var q = new double[c.NumHeads][][];
        var k = new double[c.NumKvHeads][][];
        var v = new double[c.NumKvHeads][][];
        for (int h = 0; h < c.NumHeads; h++) q[h] = new double[n][];
        for (int h = 0; h < c.NumKvHeads; h++) { k[h] = new double[n][]; v[h] = new double[n][]; }
        for (int t = 0; t < n; t++)
        {
            double[] normed = RmsNorm(x[t], inNorm, c.RmsNormEps);
            double[] qt = AddBias(Linear(wq, c.NumHeads * d, hidden, normed), qBias);
            double[] kt = AddBias(Linear(wk, c.NumKvHeads * d, hidden, normed), kBias);
            double[] vt = AddBias(Linear(wv, c.NumKvHeads * d, hidden, normed), vBias);
            for (int h = 0; h < c.NumHeads; h++) q[h][t] = Rope(HeadNormed(qt, h, qNorm), t, _invFreq);
            for (int h = 0; h < c.NumKvHeads; h++)
            {
                k[h][t] = Rope(HeadNormed(kt, h, kNorm), t, _invFreq);
                v[h][t] = vt.AsSpan(h * d, d).ToArray();
            }
        }

        // Attention per query head; query head h reads key/value head h / (heads / kv_heads) (repeat_kv).
        int group = c.NumHeads / c.NumKvHeads;
        var concat = new double[n][];
        for (int t = 0; t < n; t++) concat[t] = new double[c.NumHeads * d];
        for (int h = 0; h < c.NumHeads; h++)
        {
            int kvHead = h / group;
            double[][] o = CausalAttention(q[h], k[kvHead], v[kvHead], c.SlidingWindow);
            for (int t = 0; t < n; t++) Array.Copy(o[t], 0, concat[t], h * d, d);
        }

        var result = new double[n][];
        for (int t = 0; t < n; t++)
        {
            double[] attnOut = AddBias(Linear(wo, hidden, c.NumHeads * d, concat[t]), oBias);
            var h1 = new double[hidden];
            for (int j = 0; j < hidden; j++) h1[j] = x[t][j] + attnOut[j];

            double[] normed = RmsNorm(h1, postNorm, c.RmsNormEps);
            double[] gate = AddBias(Linear(wGate, c.IntermediateSize, hidden, normed), gateBias);
            double[] up = AddBias(Linear(wUp, c.IntermediateSize, hidden, normed), upBias);
            var act = new double[c.IntermediateSize];
            for (int j = 0; j < act.Length; j++) act[j] = Silu(gate[j]) * up[j];
            double[] down = AddBias(Linear(wDown, hidden, c.IntermediateSize, act), downBias);
            var h2 = new double[hidden];
            for (int j = 0; j < hidden; j++) h2[j] = h1[j] + down[j];
            result[t] = h2;
        }
        return result;
    }

    private float[] W(string name, long expectedLength)
    {
        if (!_cache.TryGetValue(name, out var values))
        {
            values = _lookup(name) ?? throw new InvalidOperationException($"weight lookup returned null for {name}");
            _cache[name] = values;
        }
        if (values.LongLength != expectedLength)
            throw new InvalidOperationException($"{name}: {values.LongLength} values, expected {expectedLength}");
        return values;
    }

    // ---- Building blocks (static so tests can check them one by one) ----

    /// <summary>y + b where the projection has a bias (nn.Linear(bias=True)), else y.</summary>
    public static double[] AddBias(double[] y, float[]? bias)
    {
        if (bias is null) return y;
        for (int i = 0; i < y.Length; i++) y[i] += bias[i];
        return y;
    }

    /// <summary>y = W x with W row-major [rows, cols] (PyTorch Linear [out, in]).</summary>
    public static double[] Linear(float[] w, int rows, int cols, double[] x)
    {
        if (x.Length != cols) throw new ArgumentException($"input has {x.Length} elements, expected {cols}");
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            long row = (long)r * cols;
            for (int i = 0; i < cols; i++) sum += (double)w[row + i] * x[i];
            y[r] = sum;
        }
        return y;
    }

    /// <summary>x / sqrt(mean(x²) + eps) * w.</summary>
    public static double[] RmsNorm(double[] x, float[] w, double eps)
    {
        if (w.Length != x.Length) throw new ArgumentException($"norm weight has {w.Length} elements, input {x.Length}");
        double sumSq = 0;
        foreach (double e in x) sumSq += e * e;
        double inv = 1.0 / Math.Sqrt(sumSq / x.Length + eps);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * inv * w[i];
        return y;
    }

    public static double Silu(double x) => x / (1.0 + Math.Exp(-x));

    /// <summary>
    /// HF <c>_compute_default_rope_parameters</c>: inv_freq[i] = 1 / theta^(2i / head_dim), i &lt; head_dim / 2;
    /// then, for "llama3" scaling, <c>_compute_llama3_parameters</c>: wavelengths longer than
    /// original / low_freq_factor are divided by factor, shorter than original / high_freq_factor kept,
    /// and the band between interpolated smoothly. The attention factor of both is 1.
    /// </summary>
    public static double[] InverseFrequencies(int headDim, double theta, RopeScaling? scaling)
    {
        int half = headDim / 2;
        var invFreq = new double[half];
        for (int i = 0; i < half; i++) invFreq[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        if (scaling is null) return invFreq;
        if (scaling.Type != "llama3") throw new NotSupportedException($"rope scaling {scaling.Type}");

        double factor = scaling.Factor, low = scaling.LowFreqFactor, high = scaling.HighFreqFactor;
        double oldContext = scaling.OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = oldContext / low;
        double highFreqWavelen = oldContext / high;
        for (int i = 0; i < half; i++)
        {
            double f = invFreq[i];
            double wavelen = 2 * Math.PI / f;
            double scaled = wavelen > lowFreqWavelen ? f / factor : f;
            bool medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            if (medium)
            {
                double smooth = (oldContext / wavelen - low) / (high - low);
                scaled = (1 - smooth) * scaled / factor + smooth * scaled;
            }
            invFreq[i] = scaled;
        }
        return invFreq;
    }

    /// <summary>
    /// HF rotary embedding, "rotate_half" convention: element i pairs with element i + head_dim/2, both rotated
    /// by angle position · inv_freq[i]: out = x·cos + rotate_half(x)·sin, rotate_half(x) = [-x2, x1].
    /// </summary>
    public static double[] Rope(ReadOnlySpan<double> x, int position, IReadOnlyList<double> invFreq)
    {
        int d = x.Length, half = d / 2;
        if (invFreq.Count != half) throw new ArgumentException($"{invFreq.Count} frequencies for head_dim {d}");
        var y = new double[d];
        for (int i = 0; i < half; i++)
        {
            double angle = position * invFreq[i];
            double cos = Math.Cos(angle), sin = Math.Sin(angle);
            y[i] = x[i] * cos - x[i + half] * sin;
            y[i + half] = x[i + half] * cos + x[i] * sin;
        }
        return y;
    }

    /// <summary>
    /// One attention head over a sequence: out[t] = Σ_{s ≤ t} softmax_s(q[t]·k[s] / sqrt(d)) v[s].
    /// </summary>
    public static double[][] CausalAttention(double[][] q, double[][] k, double[][] v, int? slidingWindow = null)
    {
        int n = q.Length;
        if (k.Length != n || v.Length != n) throw new ArgumentException("q, k and v must have the same length");
        var output = new double[n][];
        for (int t = 0; t < n; t++)
        {
            int d = q[t].Length;
            double scale = 1.0 / Math.Sqrt(d);
            var scores = new double[t + 1];
            double max = double.NegativeInfinity;
            // transformers' sliding mask keeps key s where s > t − window; the others get weight 0.
            int first = slidingWindow is int w ? Math.Max(0, t - w + 1) : 0;
            for (int s = 0; s < first; s++) scores[s] = double.NegativeInfinity;
            for (int s = first; s <= t; s++)
            {
                double dot = 0;
                for (int i = 0; i < d; i++) dot += q[t][i] * k[s][i];
                scores[s] = dot * scale;
                max = Math.Max(max, scores[s]);
            }
            double sum = 0;
            for (int s = 0; s <= t; s++) { scores[s] = s < first ? 0 : Math.Exp(scores[s] - max); sum += scores[s]; }
            var o = new double[v[0].Length];
            for (int s = 0; s <= t; s++)
            {
                double p = scores[s] / sum;
                for (int i = 0; i < o.Length; i++) o[i] += p * v[s][i];
            }
            output[t] = o;
        }
        return output;
    }
}
