using Kangaroo.Weights;

namespace Kangaroo.Model;

/// <summary>
/// Checks a checkpoint against the config before any tensor is loaded, so that an error names its cause: a config
/// field that disagrees with every tensor that shows the same size is the field's fault (reported in config.json),
/// a single tensor that disagrees with the rest is the tensor's (reported by the per-tensor shape check). Tensors the
/// config does not use are refused: they mean the config describes another model (more layers, biases, a separate head).
/// </summary>
internal static class CheckpointCheck
{
    private const string LayerPrefix = "model.layers.";

    /// <summary>Buffers older transformers versions saved with the weights: recomputed from the config, so ignored.</summary>
    public static bool IsDerivedBuffer(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public static void CheckBase(LlamaConfig config, WeightStore weights)
    {
        string configPath = config.SourcePath ?? LlamaConfig.FileName;
        CheckLayerCount(config, weights, configPath);

        (string Tensor, int Axis)[] Evidence(params (string, int)[] places) => places;
        const string layer0 = LayerPrefix + "0.";
        CheckDimension(weights, configPath, "hidden_size", config.HiddenSize, Evidence(
            ("model.embed_tokens.weight", 1), ("model.norm.weight", 0), (layer0 + "self_attn.q_proj.weight", 1), (layer0 + "mlp.gate_proj.weight", 1)));
        CheckDimension(weights, configPath, "vocab_size", config.VocabSize, Evidence(("model.embed_tokens.weight", 0), ("lm_head.weight", 0)));
        CheckDimension(weights, configPath, "num_attention_heads × head_dim", config.QueryWidth, Evidence(
            (layer0 + "self_attn.q_proj.weight", 0), (layer0 + "self_attn.o_proj.weight", 1)));
        CheckDimension(weights, configPath, "num_key_value_heads × head_dim", config.KvWidth, Evidence(
            (layer0 + "self_attn.k_proj.weight", 0), (layer0 + "self_attn.v_proj.weight", 0)));
        CheckDimension(weights, configPath, "intermediate_size", config.IntermediateSize, Evidence(
            (layer0 + "mlp.gate_proj.weight", 0), (layer0 + "mlp.up_proj.weight", 0), (layer0 + "mlp.down_proj.weight", 1)));

        bool hasHead = weights.Contains("lm_head.weight");
        if (config.TieWordEmbeddings && hasHead)
            throw new ModelFormatException(configPath, "tie_word_embeddings is true but the weights hold their own lm_head.weight: set it false (or remove the tensor)");
        if (!config.TieWordEmbeddings && !hasHead && weights.Contains("model.embed_tokens.weight"))
            throw new ModelFormatException(configPath, "the weights have no lm_head.weight and tie_word_embeddings is not true: set tie_word_embeddings true if the output head shares the embedding");
    }

    /// <summary>
    /// Tensors the config's architecture fields add (biases, head norms) must be in the weights: a missing one is named
    /// with the field that asks for it, since the usual cause is a config that says more than its checkpoint holds.
    /// </summary>
    public static void RequireDeclared(LlamaConfig config, WeightStore weights, string prefix = "model.layers.0.")
    {
        string configPath = config.SourcePath ?? LlamaConfig.FileName;
        string attention = config.ModelType == "qwen2" ? "model_type \"qwen2\" (biases on q/k/v_proj)" : "attention_bias is true (biases on q/k/v/o_proj)";
        foreach (var (declared, name, why) in new (bool, string, string)[]
                 {
                     (config.QkvBias, "self_attn.q_proj.bias", attention),
                     (config.OutputBias, "self_attn.o_proj.bias", attention),
                     (config.MlpBias, "mlp.gate_proj.bias", "mlp_bias is true (biases on gate/up/down_proj)"),
                     (config.QueryKeyNorm, "self_attn.q_norm.weight", $"model_type \"{config.ModelType}\" (q_norm and k_norm on every query and key head)"),
                 })
        {
            if (declared && !weights.Contains(prefix + name))
                throw new ModelFormatException(configPath, $"{why}, but the weights have no {prefix + name}");
        }
    }

    /// <summary>Every tensor of <paramref name="names"/> must be expected (or a derived buffer).</summary>
    public static void RefuseUnused(IEnumerable<string> names, IReadOnlySet<string> expected, Func<string, string> fileOf, string configPath)
    {
        var unused = names.Where(n => !expected.Contains(n) && !IsDerivedBuffer(n)).ToList();
        if (unused.Count == 0) return;
        string listed = string.Join(", ", unused.Take(5).Select(n => $"\"{n}\"")) + (unused.Count > 5 ? $" and {unused.Count - 5} more" : "");
        string hint = unused.Any(n => n.EndsWith(".bias", StringComparison.Ordinal))
            ? " (biases the config does not declare: attention_bias / mlp_bias false, or an architecture without them)"
            : $" (does {configPath} describe this checkpoint?)";
        throw new ModelFormatException(fileOf(unused[0]), $"holds {unused.Count} tensor(s) the config does not use: {listed}{hint}");
    }

    /// <summary>The number of layers the checkpoint holds must be num_hidden_layers: checked before a plan of that many layers is made.</summary>
    private static void CheckLayerCount(LlamaConfig config, WeightStore weights, string configPath)
    {
        int held = 0;
        foreach (string name in weights.TensorNames)
        {
            if (!name.StartsWith(LayerPrefix, StringComparison.Ordinal)) continue;
            int end = name.IndexOf('.', LayerPrefix.Length);
            if (end > LayerPrefix.Length && int.TryParse(name.AsSpan(LayerPrefix.Length, end - LayerPrefix.Length), out int index) && index >= 0 && index < int.MaxValue)
                held = Math.Max(held, index + 1);
        }
        if (held != config.NumLayers)
        {
            string holds = held == 0 ? "no decoder layers (no model.layers.* tensors)" : $"{held} decoder layers (model.layers.0 to model.layers.{held - 1})";
            throw new ModelFormatException(configPath, $"num_hidden_layers is {config.NumLayers} but the weights hold {holds}");
        }
    }

    /// <summary>
    /// A config size that every available 2-D (or 1-D) tensor showing it contradicts, in one voice, is reported as the
    /// field's error; mixed evidence is left to the per-tensor shape check, which names the odd tensor.
    /// </summary>
    private static void CheckDimension(WeightStore weights, string configPath, string field, int configured, (string Tensor, int Axis)[] evidence)
    {
        int? seen = null;
        string? witness = null;
        foreach (var (tensor, axis) in evidence)
        {
            if (!weights.Contains(tensor)) continue;
            var shape = weights.Get(tensor).Shape;
            bool isMatrix = axis < 2 && (shape.Count == 2 || (shape.Count == 1 && axis == 0 && tensor.EndsWith("norm.weight", StringComparison.Ordinal)));
            if (!isMatrix) return;
            int size = shape[axis];
            if (seen is int other && other != size) return;
            seen = size;
            witness ??= $"{tensor} has shape {SafeTensorsHeader.FormatShape(shape)}";
        }
        if (seen is int actual && actual != configured)
            throw new ModelFormatException(configPath, $"{field} is {configured} but the weights have {actual} ({witness})");
    }
}
