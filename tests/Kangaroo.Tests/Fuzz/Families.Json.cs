using System.Text.Json.Nodes;

namespace Kangaroo.Tests.Fuzz;

/// <summary>One input family: its systematic mutations (seeds 0..n-1, the cases the issue lists) and its random ones.</summary>
internal abstract class Family
{
    public abstract string Name { get; }
    /// <summary>Share of the default corpus (the weights sum to the default case count).</summary>
    public abstract int Weight { get; }
    public abstract IReadOnlyList<Action<CaseBuilder>> Systematic { get; }
    public abstract void Random(CaseBuilder b);
}

/// <summary>Edits of JSON files, each described as "file: change".</summary>
internal static class JsonEdits
{
    public static string Abbrev(string raw) => raw.Length <= 240 ? raw : $"{raw[..160]}…({raw.Length} chars)";

    /// <summary>Sets (raw JSON) or removes (null) fields; a key "a.b" edits field b of object a (created if needed).</summary>
    public static void SetFields(CaseBuilder b, string file, IReadOnlyList<(string Key, string? Raw)> edits, bool benign = false)
    {
        var jt = JsonText.Parse(b.CurrentText(file));
        var parts = new List<string>();
        foreach (var (key, raw) in edits)
        {
            var (obj, name) = Resolve(jt, key);
            if (raw is null)
            {
                obj.Remove(name);
                parts.Add($"\"{key}\" removed");
            }
            else
            {
                jt.SetRaw(obj, name, raw);
                parts.Add($"\"{key}\" = {Abbrev(raw)}");
            }
            b.Field(name);
            if (key.Contains('.')) b.Field(key[..key.IndexOf('.')]);
        }
        b.WriteText(file, jt.Serialize());
        string d = $"{file}: {string.Join(", ", parts)}";
        if (benign) b.Benign(d); else b.Step(d);
    }

    private static (JsonObject Obj, string Name) Resolve(JsonText jt, string key)
    {
        var obj = jt.Object ?? throw new InvalidOperationException("not an object");
        int dot = key.IndexOf('.');
        if (dot < 0) return (obj, key);
        string outer = key[..dot];
        if (obj[outer] is not JsonObject inner)
        {
            inner = new JsonObject();
            obj[outer] = inner;
        }
        return (inner, key[(dot + 1)..]);
    }

    public static void Syntax(CaseBuilder b, string file, string? kind = null)
    {
        var (bytes, d, _) = JsonSyntax.Apply(b.G, b.CurrentText(file), kind);
        b.Write(file, bytes);
        if (kind == "crlf") b.Benign($"{file}: {d}");
        else b.Step($"{file}: {d}");
    }

    /// <summary>Rewrites the JSON harmlessly: keys reversed, compact, or with unknown extra fields (all must load).</summary>
    public static void Harmless(CaseBuilder b, string file, string kind)
    {
        var jt = JsonText.Parse(b.CurrentText(file));
        var obj = jt.Object!;
        switch (kind)
        {
            case "reorder":
            {
                var pairs = obj.ToList();
                obj.Clear();
                for (int i = pairs.Count - 1; i >= 0; i--) obj[pairs[i].Key] = pairs[i].Value;
                b.WriteText(file, jt.Serialize());
                b.Benign($"{file}: keys in reverse order");
                break;
            }
            case "compact":
                b.WriteText(file, jt.Serialize(indented: false));
                b.Benign($"{file}: written without whitespace or final newline");
                break;
            case "extra":
                jt.SetRaw(obj, "_name_or_path", "\"fuzz/extra\"");
                jt.SetRaw(obj, "custom_unknown_field", "{\"nested\": [1, 2.5, null, \"x\"]}");
                b.WriteText(file, jt.Serialize());
                b.Benign($"{file}: unknown extra fields \"_name_or_path\" and \"custom_unknown_field\"");
                break;
            default:
                throw new ArgumentException(kind);
        }
    }

    /// <summary>A random value suited (or deliberately unsuited) to the field.</summary>
    public static string ValueFor(Gen g, string key, JsonNode? current)
    {
        if (g.Chance(0.15)) return JsonPools.Any(g);
        if (g.Chance(0.1)) return JsonPools.TypeSwap(g, current);
        switch (key)
        {
            case "hidden_act":
                return g.Pick(new[] { "\"silu\"", "\"gelu\"", "\"relu\"", "\"gelu_new\"", "\"swish\"", "\"SiLU\"", "\"gelu_pytorch_tanh\"", "\"\"", "5", "null" });
            case "model_type":
                return g.Pick(new[] { "\"llama\"", "\"mistral\"", "\"qwen2\"", "\"gemma\"", "\"Llama\"", "\"\"", "5", "null" });
            case "torch_dtype" or "dtype":
                return g.Pick(new[] { "\"float16\"", "\"bfloat16\"", "\"float32\"", "\"int8\"", "\"auto\"", "5", "null" });
            case "attention_bias" or "mlp_bias" or "tie_word_embeddings" or "use_cache" or "do_sample" or "add_bos_token" or "add_eos_token" or "legacy":
                return g.Pick(new[] { "true", "false", "\"true\"", "\"false\"", "0", "1", "null", "[]" });
            case "rope_scaling" or "rope_parameters":
                return RopeValue(g, key == "rope_parameters");
            case "rms_norm_eps" or "rope_theta" or "temperature" or "top_p" or "initializer_range" or "attention_dropout" or "repetition_penalty":
                return g.Chance(0.7) ? g.Pick(JsonPools.Floats) : g.Pick(JsonPools.Ints);
            case "eos_token_id" or "bos_token_id" or "pad_token_id":
                return g.Pick(new[] { "0", "1", "2", "-1", "1499", "1500", "7999", "8000", "99999", "2147483648", "[2]", "[2, 1]", "[2, 99999]", "[]", "[\"2\"]", "\"2\"", "null", "2.0", "[[2]]" });
            case "bos_token" or "eos_token" or "unk_token" or "pad_token":
                return g.Pick(new[] { "\"<s>\"", "\"</s>\"", "\"<unk>\"", "\"<nope>\"", "\"\"", "null", "5", "[]", "{}", "{\"content\": \"<s>\"}", "{\"content\": 5}", "{\"content\": \"</s>\", \"lstrip\": true}" });
            case "architectures":
                return g.Pick(new[] { "[\"LlamaForCausalLM\"]", "[\"GPT2LMHeadModel\"]", "[]", "\"LlamaForCausalLM\"", "null", "[5]" });
            default:
                return g.Chance(0.8) ? g.Pick(JsonPools.Ints) : JsonPools.Any(g);
        }
    }

    public static string RopeValue(Gen g, bool withTheta)
    {
        string[] fixedValues =
        [
            "null", "5", "\"llama3\"", "[]", "{}", "{\"rope_type\": \"default\"}", "{\"rope_type\": \"linear\", \"factor\": 2.0}",
            "{\"rope_type\": \"dynamic\", \"factor\": 2.0}", "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 128}",
            "{\"rope_type\": \"longrope\", \"short_factor\": [1.0], \"long_factor\": [1.0]}", "{\"type\": \"llama3\"}",
        ];
        if (g.Chance(0.3)) return g.Pick(fixedValues);
        var parts = new List<string>();
        string type = g.Pick(new[] { "\"llama3\"", "\"llama3\"", "\"default\"", "\"LLAMA3\"", "\"linear\"", "5", "null" });
        if (!g.Chance(0.1)) parts.Add($"\"{(g.Chance(0.8) ? "rope_type" : "type")}\": {type}");
        if (withTheta || g.Chance(0.2)) parts.Add($"\"rope_theta\": {g.Pick(new[] { "10000.0", "500000.0", "1e-300", "1e-45", "0", "-1", "1e400", "\"10000\"", "1.0", "1e39" })}");
        foreach (var (field, values) in new (string, string[])[]
                 {
                     ("factor", ["8.0", "2.0", "1.0", "1e-45", "1e-300", "0", "-8", "1e300", "1e400", "\"8\""]),
                     ("low_freq_factor", ["1.0", "0", "4.0", "-1", "1e-45", "null"]),
                     ("high_freq_factor", ["4.0", "1.0", "0.5", "1e300", "\"4\""]),
                     ("original_max_position_embeddings", ["128", "8192", "0", "-5", "2147483647", "1.5", "null"]),
                 })
            if (!g.Chance(0.15)) parts.Add($"\"{field}\": {g.Pick(values)}");
        return "{" + string.Join(", ", parts) + "}";
    }

    /// <summary>1–2 random field edits (set, remove, type swap, add an optional field), sometimes then a syntax change.</summary>
    public static void RandomEdit(CaseBuilder b, string file, IReadOnlyList<string> optionalKeys)
    {
        var g = b.G;
        var jt = JsonText.TryParse(b.CurrentText(file));
        if (jt?.Object is not { } obj)
        {
            Syntax(b, file);
            return;
        }
        var parts = new List<string>();
        int edits = g.Chance(0.3) ? 2 : 1;
        bool syntax = false;
        for (int i = 0; i < edits; i++)
        {
            var keys = obj.Select(p => p.Key).ToList();
            int roll = g.Int(100);
            if (keys.Count == 0 || roll >= 90)
            {
                syntax = true;
                continue;
            }
            if (roll < 50)
            {
                string key = g.Pick(keys);
                string raw = ValueFor(g, key, obj[key]);
                jt.SetRaw(obj, key, raw);
                parts.Add($"\"{key}\" = {Abbrev(raw)}");
                b.Field(key);
            }
            else if (roll < 62)
            {
                string key = g.Pick(keys);
                obj.Remove(key);
                parts.Add($"\"{key}\" removed");
                b.Field(key);
            }
            else if (roll < 75)
            {
                string key = g.Pick(keys);
                string raw = JsonPools.TypeSwap(g, obj[key]);
                jt.SetRaw(obj, key, raw);
                parts.Add($"\"{key}\" = {Abbrev(raw)} (type changed)");
                b.Field(key);
            }
            else
            {
                string key = g.Pick(optionalKeys);
                string raw = ValueFor(g, key, null);
                jt.SetRaw(obj, key, raw);
                parts.Add($"\"{key}\" = {Abbrev(raw)} (added)");
                b.Field(key);
            }
        }
        string text = jt.Serialize();
        if (syntax || parts.Count == 0)
        {
            var (bytes, d, _) = JsonSyntax.Apply(g, text);
            parts.Add(d);
            b.Write(file, bytes);
        }
        else
        {
            b.WriteText(file, text);
        }
        b.Step($"{file}: {string.Join(", ", parts)}");
    }

    public static (string, string?) F(string key, string? raw) => (key, raw);
}

/// <summary>config.json: fields changed, removed, wrong JSON types, absurd values, rope variants, syntax.</summary>
internal sealed class ConfigFamily : Family
{
    private const string File = "config.json";
    public override string Name => "config";
    public override int Weight => 360;

    private static Action<CaseBuilder> Set(string baseName, params (string, string?)[] edits) =>
        b => JsonEdits.SetFields(b.On(b.Bases.Get(baseName)), File, edits);

    private static Action<CaseBuilder> Set(params (string, string?)[] edits) => Set("single", edits);

    private static Action<CaseBuilder> Syntax(string baseName, string kind) => b => JsonEdits.Syntax(b.On(b.Bases.Get(baseName)), File, kind);

    private static Action<CaseBuilder> Harmless(string baseName, string kind) => b => JsonEdits.Harmless(b.On(b.Bases.Get(baseName)), File, kind);

    private static Action<CaseBuilder> RawNumber(string key, string literal) => b =>
    {
        b.On(b.Bases.Single);
        string text = b.CurrentText(File);
        string before = System.Text.RegularExpressions.Regex.Match(text, $"\"{key}\": [^,\\n]+").Value;
        b.WriteText(File, text.Replace(before, $"\"{key}\": {literal}"));
        b.Field(key);
        b.Step($"{File}: \"{key}\" written as the literal {literal}");
    };

    private const string Llama3Ok = "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 128}";

    private static string Llama3(string factor = "8.0", string low = "1.0", string high = "4.0", string original = "128", string type = "\"llama3\"") =>
        $"{{\"rope_type\": {type}, \"factor\": {factor}, \"low_freq_factor\": {low}, \"high_freq_factor\": {high}, \"original_max_position_embeddings\": {original}}}";

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        // Layer counts: absurd, int32 edges, fewer than the checkpoint (silently dropping layers), wrong types.
        Set(JsonEdits.F("num_hidden_layers", "100000000")),
        Set(JsonEdits.F("num_hidden_layers", "2147483647")),
        Set(JsonEdits.F("num_hidden_layers", "2147483648")),
        Set(JsonEdits.F("num_hidden_layers", "3")),
        Set("demo", JsonEdits.F("num_hidden_layers", "11")),
        Set("sharded", JsonEdits.F("num_hidden_layers", "2")),
        Set(JsonEdits.F("num_hidden_layers", "1")),
        Set(JsonEdits.F("num_hidden_layers", "5")),
        Set(JsonEdits.F("num_hidden_layers", "0")),
        Set(JsonEdits.F("num_hidden_layers", "-4")),
        Set(JsonEdits.F("num_hidden_layers", "4.0")),
        Set(JsonEdits.F("num_hidden_layers", "\"4\"")),
        Set(JsonEdits.F("num_hidden_layers", "1e400")),
        Set(JsonEdits.F("num_hidden_layers", "[4]")),
        // Head counts whose products overflow int32 (one pair wraps to exactly the checkpoint's widths).
        Set(JsonEdits.F("num_attention_heads", "65536"), JsonEdits.F("head_dim", "65536")),
        Set(JsonEdits.F("num_attention_heads", "1073741828"), JsonEdits.F("num_key_value_heads", "536870914"), JsonEdits.F("head_dim", "8")),
        Set(JsonEdits.F("num_attention_heads", "536870916"), JsonEdits.F("head_dim", "8")),
        Set(JsonEdits.F("num_attention_heads", "2147483647")),
        Set(JsonEdits.F("num_key_value_heads", "2147483647")),
        Set(JsonEdits.F("head_dim", "2147483646")),
        Set(JsonEdits.F("hidden_size", "2147483647")),
        Set(JsonEdits.F("intermediate_size", "2147483647")),
        Set(JsonEdits.F("num_key_value_heads", "3")),
        Set(JsonEdits.F("num_key_value_heads", "8")),
        Set(JsonEdits.F("num_key_value_heads", "4")),
        Set(JsonEdits.F("head_dim", "7")),
        Set(JsonEdits.F("head_dim", "16")),
        Set(JsonEdits.F("head_dim", "8")),
        // Vocabulary: below the tokenizer's (the message must name config.json), above the checkpoint's, absurd.
        Set(JsonEdits.F("vocab_size", "1499")),
        Set("demo", JsonEdits.F("vocab_size", "7999")),
        Set(JsonEdits.F("vocab_size", "1501")),
        Set(JsonEdits.F("vocab_size", "2147483647")),
        // rope_theta.
        Set(JsonEdits.F("rope_theta", "1e-300")),
        Set(JsonEdits.F("rope_theta", "1e-45")),
        Set(JsonEdits.F("rope_theta", "0")),
        Set(JsonEdits.F("rope_theta", "-10000")),
        Set(JsonEdits.F("rope_theta", "1e400")),
        Set(JsonEdits.F("rope_theta", "\"10000\"")),
        Set(JsonEdits.F("rope_theta", "1e39")),
        // rope_scaling as number / string / list / object with odd rope types and values.
        Set(JsonEdits.F("rope_scaling", "5")),
        Set(JsonEdits.F("rope_scaling", "\"llama3\"")),
        Set(JsonEdits.F("rope_scaling", "[]")),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 2.0}")),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2.0}")),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 128}")),
        Set(JsonEdits.F("rope_scaling", Llama3(factor: "1e-45"))),
        Set(JsonEdits.F("rope_scaling", Llama3(factor: "1e-300"))),
        Set(JsonEdits.F("rope_scaling", Llama3(factor: "1e400"))),
        Set(JsonEdits.F("rope_scaling", Llama3Ok)),
        Set(JsonEdits.F("rope_scaling", Llama3Ok.Replace("rope_type", "type"))),
        Set(JsonEdits.F("rope_scaling", Llama3(type: "\"LLAMA3\""))),
        Set(JsonEdits.F("rope_scaling", "{}")),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": 5}")),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": null, \"factor\": 2.0}")),
        Set(JsonEdits.F("rope_scaling", Llama3(low: "4.0", high: "1.0"))),
        Set(JsonEdits.F("rope_scaling", Llama3(original: "0"))),
        Set(JsonEdits.F("rope_scaling", Llama3(original: "2147483647"))),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": \"default\"}")),
        Set(JsonEdits.F("rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 1e-300}")),
        Set(JsonEdits.F("rope_parameters", "{\"rope_type\": \"linear\", \"rope_theta\": 10000.0, \"factor\": 4.0}")),
        // rope_parameters (transformers 5, the demo model's layout).
        Set("demo", JsonEdits.F("rope_parameters", "5")),
        Set("demo", JsonEdits.F("rope_parameters", "\"default\"")),
        Set("demo", JsonEdits.F("rope_parameters", "[]")),
        Set("demo", JsonEdits.F("rope_parameters", "{\"rope_type\": \"linear\", \"rope_theta\": 10000.0, \"factor\": 4.0}")),
        Set("demo", JsonEdits.F("rope_parameters", "{\"rope_theta\": 1e-300, \"rope_type\": \"default\"}")),
        Set("demo", JsonEdits.F("rope_parameters", "{\"rope_type\": \"llama3\", \"rope_theta\": 10000.0, \"factor\": 1e-45, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 2048}")),
        Set("demo", JsonEdits.F("rope_parameters", "{\"rope_theta\": 10000.0}")),
        Set("demo", JsonEdits.F("rope_parameters", "null")),
        Set("demo", JsonEdits.F("rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": \"10000\"}")),
        Set("demo", JsonEdits.F("rope_parameters", null), JsonEdits.F("rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2.0}")),
        Set("demo", JsonEdits.F("rope_parameters.rope_type", "\"yarn\"")),
        // Activations, biases, sliding windows: a model the engine cannot compute faithfully must be refused.
        Set(JsonEdits.F("hidden_act", "\"gelu\"")),
        Set("demo", JsonEdits.F("hidden_act", "\"gelu\"")),
        Set(JsonEdits.F("hidden_act", "\"gelu_pytorch_tanh\"")),
        Set(JsonEdits.F("hidden_act", "\"relu\"")),
        Set(JsonEdits.F("hidden_act", "\"SiLU\"")),
        Set(JsonEdits.F("hidden_act", "5")),
        Set(JsonEdits.F("hidden_act", "\"swish\"")),
        Set(JsonEdits.F("attention_bias", "true")),
        Set("demo", JsonEdits.F("attention_bias", "true")),
        Set(JsonEdits.F("mlp_bias", "true")),
        Set(JsonEdits.F("attention_bias", "\"false\"")),
        Set(JsonEdits.F("sliding_window", "4")),
        Set("demo", JsonEdits.F("sliding_window", "16")),
        Set(JsonEdits.F("sliding_window", "511")),
        Set(JsonEdits.F("sliding_window", "4096")),
        Set(JsonEdits.F("model_type", "\"mistral\""), JsonEdits.F("sliding_window", "8")),
        Set(JsonEdits.F("model_type", "\"mistral\"")),
        Set(JsonEdits.F("model_type", "\"qwen2\"")),
        Set(JsonEdits.F("model_type", "5")),
        Set(JsonEdits.F("tie_word_embeddings", "true")),
        Set(JsonEdits.F("tie_word_embeddings", "\"false\"")),
        // Context, norms, token ids.
        Set(JsonEdits.F("max_position_embeddings", "1")),
        Set(JsonEdits.F("max_position_embeddings", "2")),
        Set(JsonEdits.F("max_position_embeddings", "0")),
        Set(JsonEdits.F("max_position_embeddings", "2147483647")),
        Set(JsonEdits.F("rms_norm_eps", "0")),
        Set(JsonEdits.F("rms_norm_eps", "-1e-5")),
        Set(JsonEdits.F("rms_norm_eps", "1e400")),
        Set(JsonEdits.F("rms_norm_eps", "\"1e-5\"")),
        Set(JsonEdits.F("rms_norm_eps", "1e300")),
        Set(JsonEdits.F("bos_token_id", "-1")),
        Set(JsonEdits.F("bos_token_id", "1500")),
        Set(JsonEdits.F("eos_token_id", "[2, 99999]")),
        Set(JsonEdits.F("eos_token_id", "\"2\"")),
        Set(JsonEdits.F("eos_token_id", "[]")),
        Set(JsonEdits.F("quantization_config", "{\"quant_method\": \"gptq\", \"bits\": 4}")),
        Set(JsonEdits.F("torch_dtype", "\"int8\"")),
        Set(JsonEdits.F("pretraining_tp", "2")),
        Set(JsonEdits.F("use_cache", "\"maybe\"")),
        // Removed fields.
        Set(JsonEdits.F("hidden_size", null)),
        Set(JsonEdits.F("intermediate_size", null)),
        Set(JsonEdits.F("num_hidden_layers", null)),
        Set(JsonEdits.F("num_attention_heads", null)),
        Set(JsonEdits.F("vocab_size", null)),
        Set(JsonEdits.F("num_key_value_heads", null)),
        Set(JsonEdits.F("rms_norm_eps", null)),
        Set(JsonEdits.F("rope_theta", null)),
        Set(JsonEdits.F("max_position_embeddings", null)),
        Set(JsonEdits.F("model_type", null)),
        Set(JsonEdits.F("hidden_act", null)),
        Set(JsonEdits.F("eos_token_id", null)),
        Set(JsonEdits.F("tie_word_embeddings", null)),
        Set("demo", JsonEdits.F("rope_parameters", null)),
        // Harmless rewrites: must load.
        Harmless("single", "extra"),
        Harmless("single", "reorder"),
        Harmless("demo", "reorder"),
        Harmless("single", "compact"),
        Syntax("single", "crlf"),
        // Syntax: comments, trailing commas, BOM, truncation, wrong roots, nesting, duplicate keys.
        Syntax("single", "line-comment"),
        Syntax("single", "block-comment"),
        Syntax("demo", "line-comment"),
        Syntax("single", "trailing-comma"),
        Syntax("single", "bom"),
        Syntax("single", "truncate"),
        Syntax("single", "root-array"),
        Syntax("single", "empty"),
        Syntax("single", "whitespace-only"),
        Syntax("single", "duplicate-key"),
        Syntax("single", "deep-nesting"),
        Syntax("single", "nul"),
        Syntax("single", "invalid-utf8"),
        Syntax("single", "two-documents"),
        Syntax("single", "single-quotes"),
        RawNumber("num_hidden_layers", "4e0"),
        RawNumber("num_hidden_layers", "0x4"),
        RawNumber("num_hidden_layers", "04"),
        RawNumber("rope_theta", "NaN"),
        RawNumber("rms_norm_eps", "Infinity"),
        RawNumber("vocab_size", "1500.0000000000001"),
        b =>
        {
            b.On(b.Bases.Single);
            b.WriteText(File, "\"config\"");
            b.Step($"{File}: a JSON string instead of an object");
        },
        b =>
        {
            b.On(b.Bases.Single);
            b.WriteText(File, "null");
            b.Step($"{File}: the JSON literal null");
        },
    ];

    private static readonly string[] OptionalKeys =
        ["sliding_window", "attention_bias", "mlp_bias", "head_dim", "rope_parameters", "rope_scaling", "hidden_act", "quantization_config", "num_key_value_heads", "rope_theta", "tie_word_embeddings", "bos_token_id", "eos_token_id", "max_position_embeddings"];

    public override void Random(CaseBuilder b)
    {
        var g = b.G;
        double r = g.Double();
        b.On(r < 0.7 ? b.Bases.Single : r < 0.85 ? b.Bases.Demo : r < 0.95 ? b.Bases.Sharded : b.Bases.PyTorch);
        JsonEdits.RandomEdit(b, File, OptionalKeys);
    }
}

/// <summary>kangaroo-adapter/config.json: the adapter's LlamaConfig plus exit_layer.</summary>
internal sealed class AdapterConfigFamily : Family
{
    private const string File = "kangaroo-adapter/config.json";
    public override string Name => "adapter-config";
    public override int Weight => 160;

    private static Action<CaseBuilder> Set(string baseName, params (string, string?)[] edits) =>
        b => JsonEdits.SetFields(b.On(b.Bases.Get(baseName)), File, edits);

    private static Action<CaseBuilder> Set(params (string, string?)[] edits) => Set("single", edits);

    private static Action<CaseBuilder> Syntax(string baseName, string kind) => b => JsonEdits.Syntax(b.On(b.Bases.Get(baseName)), File, kind);

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        Syntax("single", "line-comment"),
        Syntax("single", "block-comment"),
        Syntax("demo", "line-comment"),
        Syntax("pytorch", "block-comment"),
        Syntax("single", "trailing-comma"),
        Syntax("single", "bom"),
        Syntax("single", "empty"),
        Syntax("single", "root-array"),
        Syntax("single", "truncate"),
        Syntax("single", "deep-nesting"),
        Syntax("single", "invalid-utf8"),
        Set(JsonEdits.F("exit_layer", "0")),
        Set(JsonEdits.F("exit_layer", "-1")),
        Set(JsonEdits.F("exit_layer", "4")),
        Set(JsonEdits.F("exit_layer", "3")),
        Set(JsonEdits.F("exit_layer", "1")),
        Set(JsonEdits.F("exit_layer", "\"2\"")),
        Set(JsonEdits.F("exit_layer", "2.5")),
        Set(JsonEdits.F("exit_layer", "2147483648")),
        Set(JsonEdits.F("exit_layer", "1e400")),
        Set(JsonEdits.F("exit_layer", "[2]")),
        Set(JsonEdits.F("exit_layer", "null")),
        Set(JsonEdits.F("exit_layer", null)),
        Set("demo", JsonEdits.F("exit_layer", "12")),
        Set("demo", JsonEdits.F("exit_layer", "11")),
        Set("pytorch", JsonEdits.F("exit_layer", "0")),
        Set("pytorch", JsonEdits.F("exit_layer", "3")),
        Set(JsonEdits.F("hidden_size", "64")),
        Set(JsonEdits.F("vocab_size", "1499")),
        Set(JsonEdits.F("vocab_size", "1501")),
        Set(JsonEdits.F("num_attention_heads", "8")),
        Set(JsonEdits.F("num_key_value_heads", "4")),
        Set(JsonEdits.F("head_dim", "16")),
        Set(JsonEdits.F("num_attention_heads", "1073741828"), JsonEdits.F("num_key_value_heads", "536870914"), JsonEdits.F("head_dim", "8")),
        Set(JsonEdits.F("num_hidden_layers", "0")),
        Set(JsonEdits.F("num_hidden_layers", "2")),
        Set(JsonEdits.F("num_hidden_layers", "100000000")),
        Set(JsonEdits.F("intermediate_size", "1")),
        Set(JsonEdits.F("rope_theta", "1e-300")),
        Set(JsonEdits.F("rope_theta", "1e-45")),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 1e-45, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 128}")),
        Set(JsonEdits.F("rope_scaling", "\"x\"")),
        Set(JsonEdits.F("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}")),
        Set("demo", JsonEdits.F("rope_parameters", "5")),
        Set("demo", JsonEdits.F("rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 1e-300}")),
        Set(JsonEdits.F("attention_bias", "true")),
        Set(JsonEdits.F("sliding_window", "4")),
        Set(JsonEdits.F("rms_norm_eps", "0")),
        Set(JsonEdits.F("rms_norm_eps", "1e400")),
        Set(JsonEdits.F("hidden_act", "\"gelu\"")),
        Set(JsonEdits.F("mlp_bias", "true")),
        Set(JsonEdits.F("model_type", "\"qwen2\"")),
        Set(JsonEdits.F("max_position_embeddings", "1")),
        b =>
        {
            b.On(b.Bases.Single);
            b.Op(new FileOp.Delete(File));
            b.Step($"{File} deleted (the adapter folder keeps its weights)");
        },
        b => JsonEdits.Harmless(b.On(b.Bases.Single), File, "reorder"),
        b => JsonEdits.Harmless(b.On(b.Bases.Single), File, "extra"),
    ];

    private static readonly string[] OptionalKeys =
        ["exit_layer", "exit_layer", "exit_layer", "sliding_window", "attention_bias", "head_dim", "rope_parameters", "rope_scaling", "num_key_value_heads", "rope_theta"];

    public override void Random(CaseBuilder b)
    {
        var g = b.G;
        double r = g.Double();
        b.On(r < 0.6 ? b.Bases.Single : r < 0.8 ? b.Bases.PyTorch : r < 0.9 ? b.Bases.Demo : b.Bases.Sharded);
        JsonEdits.RandomEdit(b, File, OptionalKeys);
    }
}

/// <summary>generation_config.json (optional): token ids, sampling defaults.</summary>
internal sealed class GenerationConfigFamily : Family
{
    private const string File = "generation_config.json";
    public override string Name => "generation-config";
    public override int Weight => 80;

    private static Action<CaseBuilder> Set(params (string, string?)[] edits) => b => JsonEdits.SetFields(b.On(b.Bases.Single), File, edits);
    private static Action<CaseBuilder> Syntax(string kind) => b => JsonEdits.Syntax(b.On(b.Bases.Single), File, kind);

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        Set(JsonEdits.F("eos_token_id", "[\"2\"]")),
        Set(JsonEdits.F("eos_token_id", "\"2\"")),
        Set(JsonEdits.F("eos_token_id", "[[2]]")),
        Set(JsonEdits.F("eos_token_id", "{}")),
        Set(JsonEdits.F("eos_token_id", "1e400")),
        Set(JsonEdits.F("eos_token_id", "-1")),
        Set(JsonEdits.F("eos_token_id", "99999")),
        Set(JsonEdits.F("eos_token_id", "[2, 99999]")),
        Set(JsonEdits.F("bos_token_id", "1.5")),
        Set(JsonEdits.F("temperature", "\"0.7\"")),
        Set(JsonEdits.F("temperature", "-1")),
        Set(JsonEdits.F("temperature", "1e400")),
        Set(JsonEdits.F("do_sample", "true"), JsonEdits.F("temperature", "-1")),
        Set(JsonEdits.F("do_sample", "true"), JsonEdits.F("top_k", "-1")),
        Set(JsonEdits.F("top_k", "2147483648")),
        Set(JsonEdits.F("top_p", "2")),
        Set(JsonEdits.F("do_sample", "true"), JsonEdits.F("top_p", "0")),
        Set(JsonEdits.F("max_new_tokens", "0")),
        Set(JsonEdits.F("max_new_tokens", "-5")),
        Set(JsonEdits.F("max_new_tokens", "2147483648")),
        Set(JsonEdits.F("do_sample", "\"yes\"")),
        Set(JsonEdits.F("do_sample", "true")),
        Set(JsonEdits.F("pad_token_id", "{\"a\": 1}")),
        Syntax("root-array"),
        Syntax("empty"),
        Syntax("whitespace-only"),
        Syntax("line-comment"),
        Syntax("trailing-comma"),
        Syntax("bom"),
        Syntax("truncate"),
        Syntax("deep-nesting"),
        Syntax("invalid-utf8"),
        b =>
        {
            b.On(b.Bases.Single);
            b.Op(new FileOp.Delete(File));
            b.Benign($"{File} deleted (it is optional)");
        },
        b => JsonEdits.Harmless(b.On(b.Bases.Single), File, "extra"),
    ];

    private static readonly string[] OptionalKeys = ["temperature", "top_k", "top_p", "max_new_tokens", "pad_token_id", "repetition_penalty", "max_length", "eos_token_id"];

    public override void Random(CaseBuilder b)
    {
        b.On(b.G.Chance(0.85) ? b.Bases.Single : b.Bases.Demo);
        JsonEdits.RandomEdit(b, File, OptionalKeys);
    }
}

/// <summary>tokenizer_config.json (optional): BOS/EOS flags and tokens.</summary>
internal sealed class TokenizerConfigFamily : Family
{
    private const string File = "tokenizer_config.json";
    public override string Name => "tokenizer-config";
    public override int Weight => 100;

    private static Action<CaseBuilder> Set(params (string, string?)[] edits) => b => JsonEdits.SetFields(b.On(b.Bases.Single), File, edits);
    private static Action<CaseBuilder> Syntax(string kind) => b => JsonEdits.Syntax(b.On(b.Bases.Single), File, kind);

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        Set(JsonEdits.F("add_bos_token", "\"true\"")),
        Set(JsonEdits.F("add_bos_token", "1")),
        Set(JsonEdits.F("add_bos_token", "null")),
        Set(JsonEdits.F("add_bos_token", "false")),
        Set(JsonEdits.F("add_eos_token", "true")),
        Set(JsonEdits.F("add_eos_token", "\"x\"")),
        Set(JsonEdits.F("bos_token", "5")),
        Set(JsonEdits.F("bos_token", "[]")),
        Set(JsonEdits.F("bos_token", "{}")),
        Set(JsonEdits.F("bos_token", "{\"content\": 5}")),
        Set(JsonEdits.F("bos_token", "\"<nope>\"")),
        Set(JsonEdits.F("bos_token", "null")),
        Set(JsonEdits.F("bos_token", "\"\"")),
        Set(JsonEdits.F("eos_token", "null")),
        Set(JsonEdits.F("eos_token", "\"</nope>\"")),
        Set(JsonEdits.F("eos_token", "5")),
        Set(JsonEdits.F("eos_token", "\"<unk>\"")),
        Set(JsonEdits.F("unk_token", "5")),
        Set(JsonEdits.F("chat_template", JsonText.Literal(new string('{', 1 << 20)))),
        Set(JsonEdits.F("added_tokens_decoder", "{\"0\": 5}")),
        Set(JsonEdits.F("model_max_length", "1e30")),
        Set(JsonEdits.F("model_max_length", "1e400")),
        Set(JsonEdits.F("tokenizer_class", "\"GPT2Tokenizer\"")),
        Set(JsonEdits.F("legacy", "\"x\"")),
        b => JsonEdits.SetFields(b.On(b.Bases.Single), File, [JsonEdits.F("bos_token", "{\"content\": \"<s>\"}")], benign: true),
        Syntax("root-array"),
        Syntax("empty"),
        Syntax("line-comment"),
        Syntax("trailing-comma"),
        Syntax("bom"),
        Syntax("truncate"),
        Syntax("deep-nesting"),
        Syntax("invalid-utf8"),
        b => JsonEdits.Syntax(b.On(b.Bases.Demo), File, "block-comment"),
        b =>
        {
            b.On(b.Bases.Single);
            b.Op(new FileOp.Delete(File));
            b.Benign($"{File} deleted (it is optional)");
        },
        b => JsonEdits.Harmless(b.On(b.Bases.Single), File, "reorder"),
    ];

    private static readonly string[] OptionalKeys = ["add_bos_token", "add_eos_token", "bos_token", "eos_token", "pad_token", "unk_token", "legacy", "model_max_length"];

    public override void Random(CaseBuilder b)
    {
        b.On(b.G.Chance(0.85) ? b.Bases.Single : b.Bases.Demo);
        JsonEdits.RandomEdit(b, File, OptionalKeys);
    }
}
