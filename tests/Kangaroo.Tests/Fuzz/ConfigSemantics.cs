using System.Text.Json;

namespace Kangaroo.Tests.Fuzz;

/// <summary>
/// Says whether a (mutated) config.json still describes the checkpoint next to it, independently of the engine's
/// parser: the reasons a load must be refused. The rules follow what Hugging Face transformers does with the field
/// (LlamaForCausalLM): a config the engine cannot serve faithfully must be refused, not approximated.
/// </summary>
/// <remarks>
/// Must refuse when: hidden_act is not SiLU; attention_bias / mlp_bias is true in Python's sense (no bias tensors, and
/// the engine has no biases); sliding_window is smaller than the context and model_type is not mistral; num_hidden_layers differs from the checkpoint's layers; a
/// dimension (hidden, intermediate, vocab, query/KV widths) no longer matches the tensors; a required integer is not
/// a positive integer; rope_parameters / rope_scaling is neither an object nor null, or names a rope type other than
/// default / llama3, or its values give non-finite rotary angles within the context; rms_norm_eps is not a positive
/// finite number; max_position_embeddings is below 2 (the model's); tie_word_embeddings is true while the checkpoint has its own
/// lm_head.weight (an unused tensor); model_type is not llama / mistral (qwen2 and qwen3 load in the engine, but
/// only with the bias and head-norm tensors the fuzz bases do not have). For an adapter's config: the same rules
/// for what the adapter uses (its attention, norms and rope), plus exit_layer in [1, layers − 1].
/// </remarks>
internal static class ConfigSemantics
{
    public static List<string> RefuseReasons(byte[] text, FuzzBase b, bool adapter)
    {
        var reasons = new List<string>();
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = 256 });
        }
        catch (JsonException)
        {
            return reasons; // not JSON: the loader refuses it on its own; nothing more to say
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return reasons;
            Check(doc.RootElement, b, adapter, reasons);
        }
        return reasons;
    }

    private static void Check(JsonElement root, FuzzBase b, bool adapter, List<string> reasons)
    {
        var c = b.Config;
        bool Has(string name, out JsonElement v) => root.TryGetProperty(name, out v) && v.ValueKind != JsonValueKind.Null;

        // Integers the architecture needs.
        int? Int(string name, bool required)
        {
            if (!Has(name, out var v))
            {
                if (required) reasons.Add($"required \"{name}\" is missing");
                return null;
            }
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long l) || l <= 0 || l > int.MaxValue)
            {
                reasons.Add($"\"{name}\" = {Short(v)} is not a positive int32");
                return null;
            }
            return (int)l;
        }

        int? hidden = Int("hidden_size", true);
        int? intermediate = Int("intermediate_size", true);
        int? layers = Int("num_hidden_layers", true);
        int? heads = Int("num_attention_heads", true);
        int? kvHeads = Int("num_key_value_heads", false) ?? (Has("num_key_value_heads", out _) ? null : heads);
        int? vocab = Int("vocab_size", true);
        int? headDimField = Int("head_dim", false);
        int? maxPos = Int("max_position_embeddings", false);
        bool headDimBroken = Has("head_dim", out _) && headDimField is null;

        if (hidden is int h && h != c.HiddenSize) reasons.Add($"hidden_size {h} ≠ the checkpoint's {c.HiddenSize}");
        if (vocab is int v && v != c.VocabSize) reasons.Add($"vocab_size {v} ≠ the checkpoint's {c.VocabSize}");
        if (!adapter && intermediate is int i && i != c.IntermediateSize) reasons.Add($"intermediate_size {i} ≠ the checkpoint's {c.IntermediateSize}");
        if (!adapter && layers is int l && l != c.NumLayers)
            reasons.Add(l < c.NumLayers ? $"num_hidden_layers {l} < the checkpoint's {c.NumLayers} layers (layers silently dropped)" : $"num_hidden_layers {l} > the checkpoint's {c.NumLayers} layers");

        int? headDim = null;
        if (heads is int nh && !headDimBroken)
        {
            if (headDimField is int hd) headDim = hd;
            else if (hidden is int hs && hs % nh == 0) headDim = hs / nh;
            else if (hidden is int) reasons.Add("num_attention_heads does not divide hidden_size and no head_dim");
        }
        if (heads is int qh && kvHeads is int kh && headDim is int d)
        {
            long query = (long)qh * d, kv = (long)kh * d;
            if (query != c.QueryWidth) reasons.Add($"num_attention_heads × head_dim = {query} ≠ the checkpoint's query width {c.QueryWidth}");
            if (kv != c.KvWidth) reasons.Add($"num_key_value_heads × head_dim = {kv} ≠ the checkpoint's KV width {c.KvWidth}");
            if (qh % kh != 0) reasons.Add("num_key_value_heads does not divide num_attention_heads");
            if (d % 2 != 0) reasons.Add($"head dimension {d} is odd");
        }

        if (!adapter && maxPos is < 2) reasons.Add($"max_position_embeddings {maxPos} leaves no room to generate");
        int context = Math.Min(maxPos ?? 2048, 4096);

        if (Has("rms_norm_eps", out var eps) && (eps.ValueKind != JsonValueKind.Number || !eps.TryGetDouble(out double e) || !(e > 0) || double.IsInfinity(e)))
            reasons.Add($"rms_norm_eps = {Short(eps)} is not a positive finite number");

        if (Has("model_type", out var mt) && (mt.ValueKind != JsonValueKind.String || mt.GetString() is not ("llama" or "mistral")))
            reasons.Add($"model_type {Short(mt)} is not llama");

        if (!adapter && Has("hidden_act", out var act) && (act.ValueKind != JsonValueKind.String || act.GetString() is not ("silu" or "swish")))
            reasons.Add($"hidden_act {Short(act)} is not SiLU");
        // transformers reads these flags by truthiness: "false" (a non-empty string) means true, 0 / "" / [] mean false.
        if (Has("attention_bias", out var ab) && Truthy(ab))
            reasons.Add($"attention_bias = {Short(ab)}: attention with biases the checkpoint lacks");
        if (!adapter && Has("mlp_bias", out var mb) && Truthy(mb))
            reasons.Add($"mlp_bias = {Short(mb)}: an MLP with biases the checkpoint lacks");
        // Mistral's window is computed (the fuzz runs on the CPU backend, which slides); another model_type's is refused.
        bool mistral = Has("model_type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "mistral";
        if (!mistral && Has("sliding_window", out var sw) && sw.ValueKind == JsonValueKind.Number && sw.TryGetDouble(out double window) && window < context)
            reasons.Add($"sliding_window {Short(sw)} is smaller than the context ({context})");
        if (!adapter && Has("tie_word_embeddings", out var tie) && Truthy(tie) && b.ModelTensors.Contains("lm_head.weight"))
            reasons.Add($"tie_word_embeddings = {Short(tie)} but the checkpoint has its own lm_head.weight (unused)");

        CheckRope(root, headDim, context, reasons);

        if (adapter && Has("exit_layer", out var exit))
        {
            if (exit.ValueKind != JsonValueKind.Number || !exit.TryGetInt32(out int x) || x < 1 || x >= c.NumLayers)
                reasons.Add($"exit_layer {Short(exit)} is not a layer in [1, {c.NumLayers - 1}]");
        }
    }

    /// <summary>rope_parameters (transformers 5) or rope_scaling + rope_theta (earlier): the rotary angles must be finite.</summary>
    private static void CheckRope(JsonElement root, int? headDim, int context, List<string> reasons)
    {
        JsonElement? parameters = null, scaling = null;
        if (root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind != JsonValueKind.Null)
        {
            if (rp.ValueKind != JsonValueKind.Object) reasons.Add($"rope_parameters = {Short(rp)} is not an object");
            else parameters = rp;
        }
        if (root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind != JsonValueKind.Null)
        {
            if (rs.ValueKind != JsonValueKind.Object) reasons.Add($"rope_scaling = {Short(rs)} is not an object");
            else scaling = rs;
        }

        double theta = 10000;
        bool thetaOk = true;
        JsonElement? thetaElement = null;
        if (parameters is { } p0 && p0.TryGetProperty("rope_theta", out var pt) && pt.ValueKind != JsonValueKind.Null) thetaElement = pt;
        else if (root.TryGetProperty("rope_theta", out var rt) && rt.ValueKind != JsonValueKind.Null) thetaElement = rt;
        if (thetaElement is { } t)
        {
            if (t.ValueKind != JsonValueKind.Number || !t.TryGetDouble(out theta) || !(theta > 0) || double.IsInfinity(theta))
            {
                reasons.Add($"rope_theta = {Short(t)} is not a positive finite number");
                thetaOk = false;
            }
        }

        // rope_parameters wins where both are present (transformers 5); its type and scaling fields live in it.
        var rope = parameters ?? scaling;
        string type = "default";
        if (rope is { } r)
        {
            JsonElement typeElement = default;
            bool hasType = r.TryGetProperty("rope_type", out typeElement) && typeElement.ValueKind != JsonValueKind.Null
                           || r.TryGetProperty("type", out typeElement) && typeElement.ValueKind != JsonValueKind.Null;
            if (!hasType)
            {
                reasons.Add("the rope settings name no rope_type");
                return;
            }
            if (typeElement.ValueKind != JsonValueKind.String || typeElement.GetString() is not ("default" or "llama3"))
            {
                reasons.Add($"rope_type {Short(typeElement)} is not supported (only default and llama3 are)");
                return;
            }
            type = typeElement.GetString()!;
        }
        if (!thetaOk || headDim is not int d || d <= 0 || d % 2 != 0 || d > 1 << 20) return;

        var inv = new float[d / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = 1.0f / MathF.Pow((float)theta, (float)(2 * i) / d);
        if (type == "llama3")
        {
            var s = rope!.Value;
            double? Num(string n) => s.TryGetProperty(n, out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double x) ? x : null;
            double? factor = Num("factor"), low = Num("low_freq_factor"), high = Num("high_freq_factor");
            double original = Num("original_max_position_embeddings") ?? 2048;
            if (factor is not double f || low is not double lo || high is not double hi || !(f > 0) || !(lo > 0) || !(hi > lo) || !(original > 0)
                || double.IsInfinity(f) || double.IsInfinity(hi))
            {
                reasons.Add("llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0");
                return;
            }
            double lowWave = original / lo, highWave = original / hi;
            for (int i = 0; i < inv.Length; i++)
            {
                double freq = inv[i], wave = 2 * Math.PI / freq;
                if (wave < highWave) continue;
                if (wave > lowWave) inv[i] = (float)(freq / f);
                else
                {
                    double smooth = (original / wave - lo) / (hi - lo);
                    inv[i] = (float)((1 - smooth) * freq / f + smooth * freq);
                }
            }
        }
        for (int i = 0; i < inv.Length; i++)
        {
            float angle = inv[i] * (context - 1);
            if (!float.IsFinite(inv[i]) || !float.IsFinite(angle) || !float.IsFinite(MathF.Cos(angle)))
            {
                reasons.Add($"rotary frequency {i} is {inv[i]} (angles not finite within the context)");
                return;
            }
        }
    }

    /// <summary>Python's truth value of the JSON value.</summary>
    private static bool Truthy(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.Number => !(e.TryGetDouble(out double d) && d == 0),
        JsonValueKind.String => e.GetString()!.Length > 0,
        JsonValueKind.Array => e.GetArrayLength() > 0,
        JsonValueKind.Object => e.EnumerateObject().Any(),
        _ => false,
    };

    private static string Short(JsonElement e)
    {
        string raw = e.GetRawText();
        return raw.Length > 40 ? raw[..40] + "…" : raw;
    }
}
