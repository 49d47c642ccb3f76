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

    /// <summary>Number of query heads sharing one key/value head.</summary>
    public int GroupSize => NumHeads / NumKvHeads;
    public int QueryWidth => NumHeads * HeadDim;
    public int KvWidth => NumKvHeads * HeadDim;

    public const string FileName = "config.json";

    public static LlamaConfig LoadFromDirectory(string directory) => Load(System.IO.Path.Combine(directory, FileName));

    public static LlamaConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException) { throw new ModelFormatException(path, "file not found (a model directory needs config.json)"); }
        catch (DirectoryNotFoundException) { throw new ModelFormatException(path, "directory not found"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot read: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses config.json text; <paramref name="sourcePath"/> only names the file in errors.</summary>
    public static LlamaConfig Parse(string json, string sourcePath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(sourcePath, $"not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(sourcePath, "expected a JSON object at the top level");
            var reader = new FieldReader(root, sourcePath);

            string modelType = reader.OptionalString("model_type") ?? "llama";
            if (modelType is not ("llama" or "mistral"))
                throw new ModelFormatException(sourcePath, $"model_type \"{modelType}\" is not supported (expected \"llama\" or \"mistral\")");

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

            double eps = reader.OptionalDouble("rms_norm_eps") ?? 1e-6;
            if (!(eps > 0) || double.IsInfinity(eps))
                throw new ModelFormatException(sourcePath, $"rms_norm_eps must be a positive number, got {eps}");
            // Transformers 5 writes rotary settings as "rope_parameters" {rope_type, rope_theta, ...}; earlier versions as
            // top-level "rope_theta" plus "rope_scaling". Both are read; rope_parameters wins where both are present.
            JsonElement? ropeParameters = root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object ? rp : null;
            double theta = (ropeParameters is { } p ? new FieldReader(p, sourcePath, "rope_parameters.").OptionalDouble("rope_theta") : null)
                           ?? reader.OptionalDouble("rope_theta") ?? 10000.0;
            if (!(theta > 0) || double.IsInfinity(theta))
                throw new ModelFormatException(sourcePath, $"rope_theta must be a positive number, got {theta}");
            int maxPos = reader.OptionalPositiveInt("max_position_embeddings") ?? 2048;

            return new LlamaConfig
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
                RopeScaling = ropeParameters is { } parameters
                    ? ParseRopeScaling(parameters, sourcePath, maxPos, "rope_parameters")
                    : root.TryGetProperty("rope_scaling", out var scaling) ? ParseRopeScaling(scaling, sourcePath, maxPos, "rope_scaling") : null,
                MaxPositionEmbeddings = maxPos,
                TieWordEmbeddings = reader.OptionalBool("tie_word_embeddings") ?? false,
                BosTokenId = reader.OptionalTokenId("bos_token_id", vocab),
                EosTokenIds = reader.TokenIdList("eos_token_id", vocab),
                TorchDType = reader.OptionalString("torch_dtype") ?? reader.OptionalString("dtype"),
            };
        }
    }

    private static RopeScaling? ParseRopeScaling(JsonElement scaling, string path, int maxPos, string field)
    {
        if (scaling.ValueKind == JsonValueKind.Null)
            return null;
        if (scaling.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException(path, $"{field} must be an object or null");
        var reader = new FieldReader(scaling, path, field + ".");
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
