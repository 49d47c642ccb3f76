using Kangaroo.Backends;
using System.Text.Json;

namespace Kangaroo.Model;

/// <summary>"llama3" rope scaling (Llama 3.1+): low frequencies stretched by <see cref="Factor"/>, high ones kept, a smooth ramp between.</summary>
public sealed record RopeScaling(
    string Type,
    double Factor,
    double LowFreqFactor,
    double HighFreqFactor,
    int OriginalMaxPositionEmbeddings);

/// <summary>
/// The architecture of a LlamaForCausalLM (or Mistral-style) model, read from a Hugging Face <c>config.json</c>
/// and validated: every inconsistency is a <see cref="ModelFormatException"/> naming the file and the field.
/// </summary>
public sealed record LlamaConfig
{
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public bool TieWordEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>torch_dtype / dtype as written (informational: tensors carry their own dtypes).</summary>
    public string? TorchDType { get; init; }
    public string ModelType { get; init; } = "llama";
    /// <summary>
    /// Qwen3's RMSNorm of every query and key head (q_norm, k_norm: one weight of head_dim per layer each) between the
    /// projections and the rotary embedding.
    /// </summary>
    public bool QueryKeyNorm { get; init; }
    /// <summary>q_proj, k_proj and v_proj carry biases (Qwen2; Llama, Mistral and Qwen3 with attention_bias).</summary>
    public bool QkvBias { get; init; }
    /// <summary>o_proj carries a bias (attention_bias in Llama, Mistral and Qwen3; never in Qwen2).</summary>
    public bool OutputBias { get; init; }
    /// <summary>gate_proj, up_proj and down_proj carry biases (Llama's mlp_bias).</summary>
    public bool MlpBias { get; init; }
    /// <summary>Mistral's sliding attention window, when set; contexts longer than it are refused (<see cref="CheckContext"/>).</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>The config.json this came from, for error messages that name it (null when built in code).</summary>
    public string? SourcePath { get; init; }

    /// <summary>Number of query heads sharing one key/value head.</summary>
    public int GroupSize => NumHeads / NumKvHeads;
    public int QueryWidth => NumHeads * HeadDim;
    public int KvWidth => NumKvHeads * HeadDim;

    public const string FileName = "config.json";

    public static LlamaConfig LoadFromDirectory(string directory) => Load(System.IO.Path.Combine(directory, FileName));

    public static LlamaConfig Load(string path)
    {
        using var document = ModelFiles.ReadJsonObject(path, ModelFiles.MaxConfigBytes, "a model's config.json");
        return Parse(document.RootElement, path);
    }

    /// <summary>Parses config.json text; <paramref name="sourcePath"/> only names the file in errors.</summary>
    public static LlamaConfig Parse(string json, string sourcePath)
    {
        using var document = ModelFiles.ParseJsonObject(() => JsonDocument.Parse(json, ModelFiles.JsonOptions), sourcePath);
        return Parse(document.RootElement, sourcePath);
    }

    /// <summary>Activation names that mean SiLU in transformers' ACT2FN.</summary>
    private static readonly string[] SiluNames = ["silu", "swish"];

    /// <summary>Parses a config.json object already read (an adapter's config carries extra fields beside it).</summary>
    internal static LlamaConfig Parse(JsonElement root, string sourcePath)
    {
        var reader = new FieldReader(root, sourcePath);

        string modelType = reader.OptionalString("model_type") ?? "llama";
        if (modelType is "qwen2_moe" or "qwen3_moe")
            throw new ModelFormatException(sourcePath, $"model_type \"{modelType}\" is not supported: mixture-of-experts layers are not implemented (llama, mistral, qwen2 and qwen3 are)");
        if (modelType is not ("llama" or "mistral" or "qwen2" or "qwen3"))
            throw new ModelFormatException(sourcePath, $"model_type \"{modelType}\" is not supported (expected \"llama\", \"mistral\", \"qwen2\" or \"qwen3\")");
        bool qwen = modelType is "qwen2" or "qwen3";

        int hidden = reader.RequiredPositiveInt("hidden_size");
        int intermediate = reader.RequiredPositiveInt("intermediate_size");
        int layers = reader.RequiredPositiveInt("num_hidden_layers");
        int heads = reader.RequiredPositiveInt("num_attention_heads");
        int kvHeads = reader.OptionalPositiveInt("num_key_value_heads") ?? heads;
        int vocab = reader.RequiredPositiveInt("vocab_size");
        int? explicitHeadDim = reader.OptionalPositiveInt("head_dim");

        if (explicitHeadDim is null && hidden % heads != 0)
            throw new ModelFormatException(sourcePath, $"num_attention_heads ({heads}) does not divide hidden_size ({hidden}) and no head_dim is given");
        int headDim = explicitHeadDim ?? hidden / heads;
        if (headDim % 2 != 0)
            throw new ModelFormatException(sourcePath, $"head dimension {headDim} is odd; rotary embeddings need an even head dimension");
        if (heads % kvHeads != 0)
            throw new ModelFormatException(sourcePath, $"num_key_value_heads ({kvHeads}) does not divide num_attention_heads ({heads})");
        CheckSizes(sourcePath, hidden, intermediate, heads, kvHeads, headDim, vocab);

        string activation = reader.OptionalString("hidden_act") ?? "silu";
        if (!SiluNames.Contains(activation))
            throw new ModelFormatException(sourcePath, $"hidden_act \"{activation}\" is not supported (Llama's MLP is implemented with \"silu\")");
        // As transformers builds the layers: Qwen2's q/k/v projections always carry biases (no switch); Llama and Qwen3
        // follow attention_bias (all four attention projections), Llama's MLP mlp_bias; Mistral's have none whatever the
        // config says. A field transformers ignores is ignored here too, and bias tensors nothing declares are refused.
        bool attentionBias = modelType is "llama" or "qwen3" && reader.OptionalBool("attention_bias") == true;
        bool mlpBias = modelType == "llama" && reader.OptionalBool("mlp_bias") == true;
        if (root.TryGetProperty("quantization_config", out var quantization) && quantization.ValueKind != JsonValueKind.Null)
            throw new ModelFormatException(sourcePath, "quantization_config is set: quantized checkpoints are not supported (use F16, BF16 or F32 weights)");
        // Qwen configs write a sliding_window that applies only with use_sliding_window (and then only to the layers
        // from max_window_layers on, or as layer_types says); Mistral's applies whenever it is set.
        int? slidingWindow = null;
        if (qwen)
        {
            if (reader.OptionalBool("use_sliding_window") == true)
                throw new ModelFormatException(sourcePath, "use_sliding_window is true: Qwen's sliding-window layers are not implemented (full attention only)");
            if (root.TryGetProperty("layer_types", out var layerTypes) && layerTypes.ValueKind == JsonValueKind.Array)
            {
                foreach (var type in layerTypes.EnumerateArray())
                    if (type.ValueKind != JsonValueKind.String || type.GetString() != "full_attention")
                        throw new ModelFormatException(sourcePath, $"layer_types holds {type.GetRawText()}: only \"full_attention\" layers are implemented");
            }
        }
        else
        {
            slidingWindow = reader.OptionalPositiveInt("sliding_window");
        }

        double eps = reader.OptionalDouble("rms_norm_eps") ?? 1e-6;
        if (!(eps > 0) || !(eps < 1) || (float)eps == 0)
            throw new ModelFormatException(sourcePath, $"rms_norm_eps must be a number in (0, 1) that float32 can hold, got {eps}");
        // Transformers 5 writes rotary settings as "rope_parameters" {rope_type, rope_theta, ...}; earlier versions as
        // top-level "rope_theta" plus "rope_scaling". Both are read and checked; rope_parameters wins where both are present.
        JsonElement? ropeParameters = null;
        if (root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind != JsonValueKind.Null)
        {
            if (rp.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(sourcePath, $"field \"rope_parameters\" must be an object or null, got {rp.GetRawText()}");
            ropeParameters = rp;
        }
        int maxPos = reader.OptionalPositiveInt("max_position_embeddings") ?? 2048;
        if (maxPos < 2)
            throw new ModelFormatException(sourcePath, $"max_position_embeddings is {maxPos}: a sequence needs at least 2 positions (the prompt's and one generated)");
        double topLevelTheta = reader.OptionalDouble("rope_theta") ?? 10000.0;
        CheckTheta(sourcePath, "rope_theta", topLevelTheta);
        double theta = topLevelTheta;
        if (ropeParameters is { } p && new FieldReader(p, sourcePath, "rope_parameters.").OptionalDouble("rope_theta") is double nested)
        {
            CheckTheta(sourcePath, "rope_parameters.rope_theta", nested);
            theta = nested;
        }
        RopeScaling? legacyScaling = root.TryGetProperty("rope_scaling", out var scaling) ? ParseRopeScaling(scaling, sourcePath, maxPos, "rope_scaling") : null;
        RopeScaling? ropeScaling = ropeParameters is { } parameters ? ParseRopeScaling(parameters, sourcePath, maxPos, "rope_parameters") : legacyScaling;

        var config = new LlamaConfig
        {
            ModelType = modelType,
            HiddenSize = hidden,
            IntermediateSize = intermediate,
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            RmsNormEps = eps,
            RopeTheta = theta,
            RopeScaling = ropeScaling,
            MaxPositionEmbeddings = maxPos,
            SlidingWindow = slidingWindow,
            QueryKeyNorm = modelType == "qwen3",
            QkvBias = modelType == "qwen2" || attentionBias,
            OutputBias = attentionBias,
            MlpBias = mlpBias,
            TieWordEmbeddings = reader.OptionalBool("tie_word_embeddings") ?? false,
            BosTokenId = reader.OptionalTokenId("bos_token_id", vocab),
            EosTokenIds = reader.TokenIdList("eos_token_id", vocab),
            TorchDType = reader.OptionalString("torch_dtype") ?? reader.OptionalString("dtype"),
            SourcePath = sourcePath,
        };
        CheckRotaryFrequencies(config, ropeParameters is not null ? "rope_parameters" : "rope_theta/rope_scaling");
        return config;
    }

    private static void CheckTheta(string path, string field, double theta)
    {
        if (!(theta > 1) || double.IsInfinity(theta))
            throw new ModelFormatException(path, $"{field} must be a finite number above 1 (the rotary base; Llama uses 10000 to 500000), got {theta}");
    }

    /// <summary>
    /// Sizes are multiplied here, checked, so that a config whose products overflow is refused by field name instead
    /// of failing deep inside a backend: every weight matrix must hold fewer than 2³¹ elements.
    /// </summary>
    private static void CheckSizes(string path, int hidden, int intermediate, int heads, int kvHeads, int headDim, int vocab)
    {
        void Fits(string what, long rows, long columns)
        {
            if (rows * columns > int.MaxValue)
                throw new ModelFormatException(path, $"{what} = {rows:N0} × {columns:N0} elements, over the {int.MaxValue:N0} a tensor may hold");
        }
        Fits("num_attention_heads × head_dim", heads, headDim);
        Fits("num_key_value_heads × head_dim", kvHeads, headDim);
        Fits("q_proj (num_attention_heads × head_dim) × hidden_size", (long)heads * headDim, hidden);
        Fits("vocab_size × hidden_size", vocab, hidden);
        Fits("intermediate_size × hidden_size", intermediate, hidden);
    }

    /// <summary>Rotary values whose float32 angles overflow would make every logit NaN: refused here, by field.</summary>
    private static void CheckRotaryFrequencies(LlamaConfig config, string fields)
    {
        float[] frequencies = RotaryEmbedding.InverseFrequencies(config);
        float maxPosition = config.MaxPositionEmbeddings;
        foreach (float f in frequencies)
        {
            if (!float.IsFinite(f) || !(f > 0) || !float.IsFinite(f * maxPosition))
                throw new ModelFormatException(config.SourcePath ?? "config.json",
                    $"{fields} give rotary frequency {f} (rope_theta {config.RopeTheta}{(config.RopeScaling is { } s ? $", factor {s.Factor}" : "")}), which float32 angles up to max_position_embeddings {config.MaxPositionEmbeddings} cannot hold");
        }
    }

    /// <summary>
    /// Refuses a context this config cannot serve exactly on <paramref name="backend"/>: one without sliding-window
    /// attention equals Mistral's only while every sequence fits the window.
    /// </summary>
    public void CheckContext(int contextLength, IComputeBackend backend)
    {
        if (SlidingWindow is not int window || contextLength <= window || AttentionWindow(backend) > 0) return;
        throw new ModelFormatException(SourcePath ?? FileName, ModelType == "mistral"
            ? $"sliding_window is {window} but the context is {contextLength}: the {backend.Name} backend does not implement sliding-window " +
              $"attention yet (cpu and ilgpu do), so the context must be at most {window} positions there (ask for a shorter context, or another backend)"
            : $"sliding_window is {window} but the context is {contextLength}: only model_type \"mistral\" slides its window, so for \"{ModelType}\" " +
              $"the context must be at most {window} positions (ask for a shorter context)");
    }

    /// <summary>
    /// The window <see cref="IComputeBackend.TreeAttention"/> takes: Mistral's where the backend slides, else none (then
    /// contexts stay within the window, <see cref="CheckContext"/>).
    /// </summary>
    internal int AttentionWindow(IComputeBackend backend) =>
        SlidingWindow is int window && ModelType == "mistral" && backend.SupportsSlidingWindow ? window : 0;

    private static RopeScaling? ParseRopeScaling(JsonElement scaling, string path, int maxPos, string field)
    {
        if (scaling.ValueKind == JsonValueKind.Null)
            return null;
        if (scaling.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException(path, $"{field} must be an object or null");
        var reader = new FieldReader(scaling, path, field + ".");
        if (reader.OptionalDouble("partial_rotary_factor") is double partial && partial != 1.0)
            throw new ModelFormatException(path, $"{field}.partial_rotary_factor {partial} is not supported (rotary embeddings over the whole head only)");
        string type = reader.OptionalString("rope_type") ?? reader.OptionalString("type")
            ?? throw new ModelFormatException(path, $"{field} has no rope_type");
        switch (type)
        {
            case "default":
                return null;
            case "llama3":
                double factor = reader.OptionalDouble("factor") ?? throw new ModelFormatException(path, $"{field}.factor is required for llama3 scaling");
                double low = reader.OptionalDouble("low_freq_factor") ?? throw new ModelFormatException(path, $"{field}.low_freq_factor is required for llama3 scaling");
                double high = reader.OptionalDouble("high_freq_factor") ?? throw new ModelFormatException(path, $"{field}.high_freq_factor is required for llama3 scaling");
                int original = reader.OptionalPositiveInt("original_max_position_embeddings") ?? maxPos;
                if (!(factor > 0) || !(low > 0) || !(high > low))
                    throw new ModelFormatException(path, $"{field}: need factor > 0 and high_freq_factor > low_freq_factor > 0 (got factor {factor}, low {low}, high {high})");
                return new RopeScaling("llama3", factor, low, high, original);
            default:
                throw new ModelFormatException(path, $"{field} type \"{type}\" is not supported (supported: none, \"default\", \"llama3\")");
        }
    }

    /// <summary>Typed access to JSON fields with messages that name the file and the field.</summary>
    private readonly struct FieldReader(JsonElement obj, string path, string prefix = "")
    {
        private bool TryGet(string name, out JsonElement value)
        {
            if (obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null) return true;
            value = default;
            return false;
        }

        public int RequiredPositiveInt(string name) =>
            OptionalPositiveInt(name) ?? throw new ModelFormatException(path, $"required field \"{prefix}{name}\" is missing");

        public int? OptionalPositiveInt(string name)
        {
            if (!TryGet(name, out var v)) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i))
                throw new ModelFormatException(path, $"field \"{prefix}{name}\" must be an integer, got {v.GetRawText()}");
            if (i <= 0)
                throw new ModelFormatException(path, $"field \"{prefix}{name}\" must be positive, got {i}");
            return i;
        }

        public double? OptionalDouble(string name)
        {
            if (!TryGet(name, out var v)) return null;
            if (v.ValueKind != JsonValueKind.Number)
                throw new ModelFormatException(path, $"field \"{prefix}{name}\" must be a number, got {v.GetRawText()}");
            return v.GetDouble();
        }

        public bool? OptionalBool(string name)
        {
            if (!TryGet(name, out var v)) return null;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new ModelFormatException(path, $"field \"{prefix}{name}\" must be true or false, got {v.GetRawText()}"),
            };
        }

        public string? OptionalString(string name)
        {
            if (!TryGet(name, out var v)) return null;
            if (v.ValueKind != JsonValueKind.String)
                throw new ModelFormatException(path, $"field \"{prefix}{name}\" must be a string, got {v.GetRawText()}");
            return v.GetString();
        }

        public int? OptionalTokenId(string name, int vocab)
        {
            if (!TryGet(name, out var v)) return null;
            return TokenId(v, name, vocab);
        }

        /// <summary>eos_token_id may be one id or a list of ids.</summary>
        public IReadOnlyList<int> TokenIdList(string name, int vocab)
        {
            if (!TryGet(name, out var v)) return [];
            if (v.ValueKind == JsonValueKind.Array)
            {
                var ids = new List<int>();
                foreach (var item in v.EnumerateArray()) ids.Add(TokenId(item, name, vocab));
                return ids;
            }
            return [TokenId(v, name, vocab)];
        }

        private int TokenId(JsonElement v, string name, int vocab)
        {
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int id))
                throw new ModelFormatException(path, $"field \"{prefix}{name}\" must be a token id (integer), got {v.GetRawText()}");
            if (id < 0 || id >= vocab)
                throw new ModelFormatException(path, $"field \"{prefix}{name}\" = {id} is outside the vocabulary [0, {vocab})");
            return id;
        }
    }
}
