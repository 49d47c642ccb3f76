using System.Text.Json;
using Kangaroo.Model;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.TinyModels;

/// <summary>
/// The shape of a tiny random Llama model for tests. <see cref="HeadDim"/> null means hidden / heads (and no
/// head_dim in config.json); <see cref="Shards"/> &gt; 1 writes <c>model-0000k-of-0000n.safetensors</c> files plus
/// <c>model.safetensors.index.json</c>.
/// </summary>
public sealed record TinyModelSpec
{
    public string Name { get; init; } = "custom";
    public int Hidden { get; init; } = 32;
    public int Intermediate { get; init; } = 64;
    public int Layers { get; init; } = 2;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 4;
    public int? HeadDim { get; init; }
    public int Vocab { get; init; } = 96;
    public bool Tied { get; init; }
    public DType DType { get; init; } = DType.F32;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public int MaxPositions { get; init; } = 256;
    public double RmsNormEps { get; init; } = 1e-5;
    public int Shards { get; init; } = 1;
    public int Seed { get; init; } = 1234;
    public int BosTokenId { get; init; } = 1;
    public int EosTokenId { get; init; } = 2;
    /// <summary>Qwen3: model_type qwen3, q_norm/k_norm per layer (RMSNorm of every query and key head before RoPE).</summary>
    public bool QueryKeyNorm { get; init; }
    /// <summary>q/k/v_proj biases: alone, Qwen2's layout (model_type qwen2); with <see cref="OutputBias"/>, Llama's attention_bias.</summary>
    public bool QkvBias { get; init; }
    public bool OutputBias { get; init; }
    /// <summary>Llama's mlp_bias: gate/up/down_proj biases.</summary>
    public bool MlpBias { get; init; }
    /// <summary>Mistral's sliding_window (model_type mistral): each position attends to the last this many.</summary>
    public int? SlidingWindow { get; init; }
    public string ModelType => QueryKeyNorm ? "qwen3" : QkvBias && !OutputBias ? "qwen2" : SlidingWindow is not null ? "mistral" : "llama";

    public bool Sharded => Shards > 1;
    public int EffectiveHeadDim => HeadDim ?? Hidden / Heads;

    public override string ToString() => Name;

    // ---- Presets ----

    public static TinyModelSpec Mha => new() { Name = nameof(Mha), Heads = 4, KvHeads = 4, Seed = 11 };
    public static TinyModelSpec Gqa => new() { Name = nameof(Gqa), Heads = 4, KvHeads = 2, Seed = 12 };
    public static TinyModelSpec Mqa => new() { Name = nameof(Mqa), Heads = 4, KvHeads = 1, Seed = 13 };
    public static TinyModelSpec TiedEmbeddings => new() { Name = nameof(TiedEmbeddings), Heads = 4, KvHeads = 2, Tied = true, Seed = 14 };
    public static TinyModelSpec OddVocab => new() { Name = nameof(OddVocab), Heads = 4, KvHeads = 2, Vocab = 263, Seed = 15 };
    /// <summary>head_dim 12 while hidden / heads = 8: q_proj is [48, 32], o_proj [32, 48].</summary>
    public static TinyModelSpec ExplicitHeadDim => new() { Name = nameof(ExplicitHeadDim), Heads = 4, KvHeads = 2, HeadDim = 12, Seed = 16 };
    /// <summary>
    /// head_dim 16, theta 500000, llama3 scaling with original context 128: frequency 0 is "high" (kept),
    /// 1 is in the smooth band, 2..7 are "low" (divided by 8).
    /// </summary>
    public static TinyModelSpec Llama3Rope => new()
    {
        Name = nameof(Llama3Rope), Heads = 2, KvHeads = 1, RopeTheta = 500000.0,
        RopeScaling = new RopeScaling("llama3", 8.0, 1.0, 4.0, 128), MaxPositions = 1024, Seed = 17,
    };
    public static TinyModelSpec F16 => new() { Name = nameof(F16), Heads = 4, KvHeads = 2, DType = DType.F16, Seed = 18 };
    public static TinyModelSpec BF16 => new() { Name = nameof(BF16), Heads = 4, KvHeads = 2, DType = DType.BF16, Seed = 19 };
    /// <summary>Three shards; shard boundaries fall inside layers.</summary>
    public static TinyModelSpec ShardedGqa => new() { Name = nameof(ShardedGqa), Heads = 4, KvHeads = 2, Shards = 3, Seed = 20 };
    public static TinyModelSpec Deep => new() { Name = nameof(Deep), Hidden = 64, Intermediate = 128, Layers = 4, Heads = 8, KvHeads = 2, Vocab = 300, Seed = 21 };
    /// <summary>Qwen3's layout: q/k head norms, an explicit head_dim wider than hidden / heads, GQA, tied embeddings, theta 10⁶.</summary>
    public static TinyModelSpec Qwen3 => new()
    {
        Name = nameof(Qwen3), Layers = 3, Heads = 4, KvHeads = 2, HeadDim = 16, Tied = true, RopeTheta = 1000000.0, RmsNormEps = 1e-6,
        QueryKeyNorm = true, DType = DType.BF16, Seed = 22,
    };

    /// <summary>Qwen2's layout: q/k/v biases (no o_proj bias), GQA, theta 10⁶, untied.</summary>
    public static TinyModelSpec Qwen2 => new()
    {
        Name = nameof(Qwen2), Layers = 3, Heads = 4, KvHeads = 2, RopeTheta = 1000000.0, RmsNormEps = 1e-6, QkvBias = true, Seed = 23,
    };
    /// <summary>Llama with attention_bias and mlp_bias: every projection carries a bias.</summary>
    public static TinyModelSpec LlamaBiases => new()
    {
        Name = nameof(LlamaBiases), Heads = 4, KvHeads = 2, QkvBias = true, OutputBias = true, MlpBias = true, DType = DType.F16, Seed = 24,
    };

    /// <summary>Mistral with a sliding window of 5 positions, shorter than the tests' 12-token sequences.</summary>
    public static TinyModelSpec MistralWindow => new() { Name = nameof(MistralWindow), Heads = 4, KvHeads = 2, SlidingWindow = 5, Seed = 25 };

    public static IReadOnlyList<TinyModelSpec> All =>
        [Mha, Gqa, Mqa, TiedEmbeddings, OddVocab, ExplicitHeadDim, Llama3Rope, F16, BF16, ShardedGqa, Deep, Qwen3, Qwen2, LlamaBiases, MistralWindow];

    /// <summary>The preset called <paramref name="name"/> (for xunit theories, which take strings).</summary>
    public static TinyModelSpec Preset(string name) =>
        All.FirstOrDefault(s => s.Name == name) ?? throw new ArgumentException($"no preset called {name}", nameof(name));

    public static TheoryData<string> PresetNames => [.. All.Select(s => s.Name)];
}

/// <summary>A written tiny model: its directory, spec, config and the exact F32 values stored (after dtype rounding).</summary>
public sealed class TinyModel
{
    internal TinyModel(string directory, TinyModelSpec spec, LlamaConfig config, Dictionary<string, float[]> weights,
        Dictionary<string, int[]> shapes, IReadOnlyList<string> files)
    {
        Directory = directory;
        Spec = spec;
        Config = config;
        Weights = weights;
        Shapes = shapes;
        Files = files;
    }

    public string Directory { get; }
    public TinyModelSpec Spec { get; }
    public LlamaConfig Config { get; }
    /// <summary>What the weight files hold, as F32 (dtype-rounded), by Hugging Face name.</summary>
    public Dictionary<string, float[]> Weights { get; }
    public Dictionary<string, int[]> Shapes { get; }
    /// <summary>The safetensors files written (one, or the shards).</summary>
    public IReadOnlyList<string> Files { get; }

    public Func<string, float[]> Lookup => TinyModelFactory.LookupFrom(Weights);
}

/// <summary>Writes tiny random Llama model directories (config.json + safetensors) for tests.</summary>
public static class TinyModelFactory
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>The LlamaConfig the spec describes (built directly, not parsed).</summary>
    public static LlamaConfig ToConfig(TinyModelSpec spec) => new()
    {
        HiddenSize = spec.Hidden,
        IntermediateSize = spec.Intermediate,
        NumLayers = spec.Layers,
        NumHeads = spec.Heads,
        NumKvHeads = spec.KvHeads,
        HeadDim = spec.EffectiveHeadDim,
        VocabSize = spec.Vocab,
        RmsNormEps = spec.RmsNormEps,
        RopeTheta = spec.RopeTheta,
        RopeScaling = spec.RopeScaling,
        MaxPositionEmbeddings = spec.MaxPositions,
        TieWordEmbeddings = spec.Tied,
        BosTokenId = spec.BosTokenId,
        EosTokenIds = [spec.EosTokenId],
        TorchDType = TorchDTypeName(spec.DType),
        ModelType = spec.ModelType,
        QueryKeyNorm = spec.QueryKeyNorm,
        QkvBias = spec.QkvBias,
        OutputBias = spec.OutputBias,
        MlpBias = spec.MlpBias,
        SlidingWindow = spec.SlidingWindow,
    };

    public static string TorchDTypeName(DType dtype) => RandomModelWriter.TorchDTypeName(dtype);

    /// <summary>Tensor names and shapes in the order they are written (HF order: embeddings, layers, norm, lm_head).</summary>
    public static List<(string Name, int[] Shape)> TensorShapes(TinyModelSpec spec)
    {
        int h = spec.Hidden, d = spec.EffectiveHeadDim;
        var list = new List<(string, int[])> { ("model.embed_tokens.weight", [spec.Vocab, h]) };
        for (int i = 0; i < spec.Layers; i++)
        {
            string p = $"model.layers.{i}.";
            list.Add((p + "input_layernorm.weight", [h]));
            list.Add((p + "self_attn.q_proj.weight", [spec.Heads * d, h]));
            list.Add((p + "self_attn.k_proj.weight", [spec.KvHeads * d, h]));
            list.Add((p + "self_attn.v_proj.weight", [spec.KvHeads * d, h]));
            list.Add((p + "self_attn.o_proj.weight", [h, spec.Heads * d]));
            if (spec.QueryKeyNorm)
            {
                list.Add((p + "self_attn.q_norm.weight", [d]));
                list.Add((p + "self_attn.k_norm.weight", [d]));
            }
            if (spec.QkvBias)
            {
                list.Add((p + "self_attn.q_proj.bias", [spec.Heads * d]));
                list.Add((p + "self_attn.k_proj.bias", [spec.KvHeads * d]));
                list.Add((p + "self_attn.v_proj.bias", [spec.KvHeads * d]));
            }
            if (spec.OutputBias) list.Add((p + "self_attn.o_proj.bias", [h]));
            list.Add((p + "post_attention_layernorm.weight", [h]));
            list.Add((p + "mlp.gate_proj.weight", [spec.Intermediate, h]));
            list.Add((p + "mlp.up_proj.weight", [spec.Intermediate, h]));
            list.Add((p + "mlp.down_proj.weight", [h, spec.Intermediate]));
            if (spec.MlpBias)
            {
                list.Add((p + "mlp.gate_proj.bias", [spec.Intermediate]));
                list.Add((p + "mlp.up_proj.bias", [spec.Intermediate]));
                list.Add((p + "mlp.down_proj.bias", [h]));
            }
        }
        list.Add(("model.norm.weight", [h]));
        if (!spec.Tied) list.Add(("lm_head.weight", [spec.Vocab, h]));
        return list;
    }

    /// <summary>
    /// Deterministic random weights for <paramref name="spec"/> (one <see cref="Random"/> seeded with spec.Seed,
    /// tensors drawn in <see cref="TensorShapes"/> order), F32, not yet rounded to the spec's dtype.
    /// Scaled so activations and logits stay O(1): embeddings ~ N(0, 1) (N(0, 4 / hidden) when tied); norm weights ~ U(0.8, 1.2);
    /// Linear [out, in] ~ U(-1, 1)·sqrt(3 / in)·gain (unit-variance-preserving times gain), with larger gains for
    /// q/k (so attention is not uniform) and the LM head (so logits spread over a few units).
    /// </summary>
    public static Dictionary<string, float[]> CreateWeights(TinyModelSpec spec)
    {
        var rng = new Random(spec.Seed);
        var weights = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, shape) in TensorShapes(spec))
        {
            int count = shape.Aggregate(1, (a, b) => checked(a * b));
            var values = new float[count];
            if (name.EndsWith(".bias", StringComparison.Ordinal))
            {
                // Large enough to move logits visibly, so a bias added twice, or not at all, is caught.
                for (int i = 0; i < count; i++) values[i] = (float)(0.6 * rng.NextDouble() - 0.3);
            }
            else if (name.EndsWith("norm.weight", StringComparison.Ordinal))
            {
                for (int i = 0; i < count; i++) values[i] = (float)(0.8 + 0.4 * rng.NextDouble());
            }
            else if (name == "model.embed_tokens.weight")
            {
                // Tied: the embeddings are also the LM head, so shrink them to keep logits O(1) (std ≈ 2).
                double std = spec.Tied ? 2.0 / Math.Sqrt(spec.Hidden) : 1.0;
                for (int i = 0; i < count; i++) values[i] = (float)(Gaussian(rng) * std);
            }
            else
            {
                double gain = name switch
                {
                    _ when name.EndsWith("q_proj.weight", StringComparison.Ordinal) => 1.6,
                    _ when name.EndsWith("k_proj.weight", StringComparison.Ordinal) => 1.6,
                    "lm_head.weight" => 2.0,
                    _ => 0.7,
                };
                double scale = gain * Math.Sqrt(3.0 / shape[1]);
                for (int i = 0; i < count; i++) values[i] = (float)((2 * rng.NextDouble() - 1) * scale);
            }
            weights[name] = values;
        }
        return weights;
    }

    /// <summary>The F32 values a tensor of <paramref name="dtype"/> holds after writing <paramref name="values"/>.</summary>
    public static float[] RoundTo(DType dtype, ReadOnlySpan<float> values)
    {
        byte[] bytes = DTypeConversion.FromFloat32(dtype, values);
        var result = new float[values.Length];
        DTypeConversion.ToFloat32(dtype, bytes, result);
        return result;
    }

    /// <summary>Writes a random model for <paramref name="spec"/> into <paramref name="directory"/> (created if needed).</summary>
    public static TinyModel Write(TinyModelSpec spec, string directory) => Write(spec, directory, CreateWeights(spec));

    /// <summary>
    /// Writes config.json and the weights given (every tensor of <see cref="TensorShapes"/> must be present with
    /// the right length; extra names are refused). Returns the values as stored, i.e. rounded to spec.DType.
    /// </summary>
    public static TinyModel Write(TinyModelSpec spec, string directory, IReadOnlyDictionary<string, float[]> weights)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Shards < 1) throw new ArgumentException("Shards must be at least 1", nameof(spec));
        System.IO.Directory.CreateDirectory(directory);
        var shapes = TensorShapes(spec);
        foreach (var name in weights.Keys)
            if (!shapes.Exists(s => s.Name == name)) throw new ArgumentException($"unexpected tensor {name} for spec {spec.Name}");

        File.WriteAllText(Path.Combine(directory, LlamaConfig.FileName), ConfigJson(spec));

        var stored = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var shapeMap = new Dictionary<string, int[]>(StringComparer.Ordinal);
        long totalBytes = 0;
        foreach (var (name, shape) in shapes)
        {
            if (!weights.TryGetValue(name, out var values)) throw new ArgumentException($"missing tensor {name}");
            long count = shape.Aggregate(1L, (a, b) => a * b);
            if (values.LongLength != count) throw new ArgumentException($"{name}: {values.Length} values for shape [{string.Join(", ", shape)}]");
            stored[name] = RoundTo(spec.DType, values);
            shapeMap[name] = shape;
            totalBytes += count * spec.DType.SizeInBytes();
        }

        var files = new List<string>();
        if (!spec.Sharded)
        {
            var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
            foreach (var (name, shape) in shapes) writer.Add(name, spec.DType, shape, weights[name]);
            string path = Path.Combine(directory, SingleFileName);
            writer.WriteTo(path);
            files.Add(path);
        }
        else
        {
            // Split by cumulative size, so shard boundaries land wherever the bytes fall (inside layers too).
            int shardCount = Math.Min(spec.Shards, shapes.Count);
            var assignment = new List<List<(string Name, int[] Shape)>>();
            for (int s = 0; s < shardCount; s++) assignment.Add([]);
            long running = 0;
            foreach (var (name, shape) in shapes)
            {
                int shard = (int)Math.Min(shardCount - 1, running * shardCount / totalBytes);
                assignment[shard].Add((name, shape));
                running += shape.Aggregate(1L, (a, b) => a * b) * spec.DType.SizeInBytes();
            }
            if (assignment.Exists(a => a.Count == 0))
                throw new ArgumentException($"spec {spec.Name}: {shardCount} shards leave one empty; use fewer shards");
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            for (int s = 0; s < shardCount; s++)
            {
                string fileName = $"model-{s + 1:D5}-of-{shardCount:D5}.safetensors";
                var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
                foreach (var (name, shape) in assignment[s])
                {
                    writer.Add(name, spec.DType, shape, weights[name]);
                    weightMap[name] = fileName;
                }
                string path = Path.Combine(directory, fileName);
                writer.WriteTo(path);
                files.Add(path);
            }
            WriteIndex(Path.Combine(directory, IndexFileName), totalBytes, weightMap);
        }
        return new TinyModel(directory, spec, ToConfig(spec), stored, shapeMap, files);
    }

    private static void WriteIndex(string path, long totalBytes, IReadOnlyDictionary<string, string> weightMap)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", totalBytes);
        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        foreach (var (name, file) in weightMap) json.WriteString(name, file);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>config.json text in the style of a Hugging Face LlamaForCausalLM checkpoint.</summary>
    /// <summary>config.json of the spec, written by the engine's own model writer (one writer for both).</summary>
    public static string ConfigJson(TinyModelSpec spec) => RandomModelWriter.ConfigJson(ToConfig(spec), spec.DType);

    /// <summary>A lookup over a name → values map; unknown names throw <see cref="KeyNotFoundException"/> naming the tensor.</summary>
    public static Func<string, float[]> LookupFrom(IReadOnlyDictionary<string, float[]> weights) =>
        name => weights.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"no tensor {name}");

    /// <summary>
    /// Reads every tensor of a model directory back through <see cref="WeightStore"/> (converted to F32) —
    /// i.e. through the engine's own reader, so it is only as trustworthy as that reader.
    /// </summary>
    public static Dictionary<string, float[]> ReadWeights(string directory)
    {
        using var store = WeightStore.OpenDirectory(directory);
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (string name in store.TensorNames) result[name] = store.Get(name).ToFloat32Array();
        return result;
    }

    /// <summary>A weight lookup for <paramref name="directory"/> read through <see cref="WeightStore"/> (see <see cref="ReadWeights"/>).</summary>
    public static Func<string, float[]> LookupFromDirectory(string directory) => LookupFrom(ReadWeights(directory));

    /// <summary>Standard normal via Box–Muller (deterministic for a given Random).</summary>
    private static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
