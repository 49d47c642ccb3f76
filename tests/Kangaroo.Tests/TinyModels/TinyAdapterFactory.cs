using System.Globalization;
using Kangaroo.Speculative;
using Kangaroo.Weights;

namespace Kangaroo.Tests.TinyModels;

/// <summary>
/// Writes Kangaroo adapters for tiny models in the engine's safetensors layout (the reference checkpoint's tensor
/// names) — random ones, and ones made to agree with their model.
/// </summary>
public static class TinyAdapterFactory
{
    public static readonly string[] TensorNames =
    [
        "layers.0.input_layernorm.weight", "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.k_proj.weight",
        "layers.0.self_attn.v_proj.weight", "layers.0.self_attn.o_proj.weight", "norm.weight",
    ];

    /// <summary>Qwen3-style adapters (the base normalizes query and key heads) hold the two head norms too.</summary>
    public static readonly string[] HeadNormTensorNames = ["layers.0.self_attn.q_norm.weight", "layers.0.self_attn.k_norm.weight"];

    /// <summary>The adapter tensors of <paramref name="spec"/>'s model, in the order they are written.</summary>
    public static List<(string Name, int[] Shape)> Shapes(TinyModelSpec spec)
    {
        int h = spec.Hidden, d = spec.EffectiveHeadDim, q = spec.Heads * d, kv = spec.KvHeads * d;
        int[][] shapes = [[h], [q, h], [kv, h], [kv, h], [h, q], [h]];
        var list = TensorNames.Select((n, i) => (n, shapes[i])).ToList();
        if (spec.QueryKeyNorm) list.AddRange(HeadNormTensorNames.Select(n => (n, new[] { d })));
        if (spec.QkvBias)
        {
            list.Add(("layers.0.self_attn.q_proj.bias", [q]));
            list.Add(("layers.0.self_attn.k_proj.bias", [kv]));
            list.Add(("layers.0.self_attn.v_proj.bias", [kv]));
        }
        if (spec.OutputBias) list.Add(("layers.0.self_attn.o_proj.bias", [h]));
        return list;
    }

    /// <summary>Random adapter weights for <paramref name="spec"/>'s model (own heads = the model's).</summary>
    public static Dictionary<string, float[]> RandomWeights(TinyModelSpec spec, int seed, double outputGain = 0.7)
    {
        var rng = new Random(seed);
        int h = spec.Hidden, q = spec.Heads * spec.EffectiveHeadDim, kv = spec.KvHeads * spec.EffectiveHeadDim;
        float[] Uniform(int rows, int cols, double gain)
        {
            var v = new float[rows * cols];
            double scale = gain * Math.Sqrt(3.0 / cols);
            for (int i = 0; i < v.Length; i++) v[i] = (float)((2 * rng.NextDouble() - 1) * scale);
            return v;
        }
        float[] Norm(int width) => Enumerable.Range(0, width).Select(_ => (float)(0.8 + 0.4 * rng.NextDouble())).ToArray();
        var weights = new Dictionary<string, float[]>
        {
            [TensorNames[0]] = Norm(h),
            [TensorNames[1]] = Uniform(q, h, 1.6),
            [TensorNames[2]] = Uniform(kv, h, 1.6),
            [TensorNames[3]] = Uniform(kv, h, 0.7),
            [TensorNames[4]] = Uniform(h, q, outputGain),
            [TensorNames[5]] = Norm(h),
        };
        if (spec.QueryKeyNorm)
            foreach (string name in HeadNormTensorNames) weights[name] = Norm(spec.EffectiveHeadDim);
        foreach (var (name, shape) in Shapes(spec).Where(t => t.Name.EndsWith(".bias", StringComparison.Ordinal)))
            weights[name] = Enumerable.Range(0, shape[0]).Select(_ => (float)(0.6 * rng.NextDouble() - 0.3)).ToArray();
        return weights;
    }

    /// <summary>Writes config.json (a one-layer LlamaConfig, plus exit_layer when given) and model.safetensors.</summary>
    public static string Write(TinyModelSpec spec, string directory, IReadOnlyDictionary<string, float[]> weights, int? exitLayer = null,
        DType dtype = DType.F32)
    {
        Directory.CreateDirectory(directory);
        string config = TinyModelFactory.ConfigJson(spec with { Layers = 1 });
        if (exitLayer is int l)
            config = config.TrimEnd().TrimEnd('}') + string.Create(CultureInfo.InvariantCulture, $",\n  \"exit_layer\": {l}\n}}\n");
        File.WriteAllText(Path.Combine(directory, "config.json"), config);
        var writer = new SafeTensorsWriter();
        foreach (var (name, shape) in Shapes(spec)) writer.Add(name, dtype, shape, weights[name]);
        writer.WriteTo(Path.Combine(directory, "model.safetensors"));
        return directory;
    }

    /// <summary>
    /// Weights for a model that the drafter can predict well: layers at and after <paramref name="exitLayer"/> are scaled to
    /// near-identity (their o_proj and down_proj multiplied by <paramref name="deepScale"/>; 0 makes them exact identity
    /// maps of the residual stream), so the full model's logits are close to LM head(final norm(layer-ℓ state)).
    /// </summary>
    public static Dictionary<string, float[]> NearIdentityDeepLayers(TinyModelSpec spec, int exitLayer, float deepScale)
    {
        var weights = TinyModelFactory.CreateWeights(spec);
        for (int i = exitLayer; i < spec.Layers; i++)
        {
            foreach (string name in new[] { $"model.layers.{i}.self_attn.o_proj.weight", $"model.layers.{i}.mlp.down_proj.weight" })
            {
                var w = weights[name];
                for (int j = 0; j < w.Length; j++) w[j] *= deepScale;
            }
        }
        return weights;
    }

    /// <summary>
    /// An adapter that copies the model's final norm and adds only a small attention output (scaled by
    /// <paramref name="outputGain"/>), so its LM-head distribution tracks the full model's when the deep layers are near identity.
    /// </summary>
    public static Dictionary<string, float[]> AgreeingWeights(TinyModelSpec spec, IReadOnlyDictionary<string, float[]> modelWeights, int seed,
        double outputGain)
    {
        var weights = RandomWeights(spec, seed, outputGain);
        weights["norm.weight"] = (float[])modelWeights["model.norm.weight"].Clone();
        return weights;
    }

    /// <summary>The exit layer to pass when the adapter records none.</summary>
    public static KangarooOptions Options(int exitLayer, int steps, float threshold) =>
        new() { ExitLayer = exitLayer, MaxDraftSteps = steps, Threshold = threshold };
}
