using Kangaroo.Model;
using Xunit;

namespace Kangaroo.Tests.Model;

public class LlamaConfigTests
{
    private const string Minimal = """
        {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
         "num_attention_heads": 4, "vocab_size": 100}
        """;

    [Fact]
    public void MinimalConfigGetsHuggingFaceDefaults()
    {
        var c = LlamaConfig.Parse(Minimal, "config.json");
        Assert.Equal(4, c.NumKvHeads);
        Assert.Equal(16, c.HeadDim);
        Assert.Equal(1e-6, c.RmsNormEps);
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.Null(c.RopeScaling);
        Assert.False(c.TieWordEmbeddings);
        Assert.Empty(c.EosTokenIds);
    }

    [Fact]
    public void ReadsGqaHeadDimRopeScalingAndEosList()
    {
        var c = LlamaConfig.Parse("""
            {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24, "vocab_size": 100,
             "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 8192, "tie_word_embeddings": true,
             "bos_token_id": 1, "eos_token_id": [2, 7], "torch_dtype": "bfloat16",
             "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 1024}}
            """, "config.json");
        Assert.Equal(2, c.NumKvHeads);
        Assert.Equal(2, c.GroupSize);
        Assert.Equal(24, c.HeadDim);
        Assert.Equal(96, c.QueryWidth);
        Assert.Equal(48, c.KvWidth);
        Assert.Equal(new[] { 2, 7 }, c.EosTokenIds);
        Assert.Equal(1, c.BosTokenId);
        Assert.True(c.TieWordEmbeddings);
        Assert.Equal(new RopeScaling("llama3", 8, 1, 4, 1024), c.RopeScaling);
        Assert.Equal("bfloat16", c.TorchDType);
    }

    [Fact]
    public void MistralModelTypeIsAccepted()
    {
        var c = LlamaConfig.Parse(Minimal.Replace("\"llama\"", "\"mistral\""), "config.json");
        Assert.Equal("mistral", c.ModelType);
    }

    /// <summary>Qwen3-8B's config.json as published (sizes shrunk): q/k head norms, an explicit head_dim, a sliding_window that is off.</summary>
    private const string Qwen3 = """
        {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1,
         "eos_token_id": 2, "head_dim": 32, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
         "intermediate_size": 96, "max_position_embeddings": 40960, "max_window_layers": 2, "model_type": "qwen3",
         "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
         "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": false,
         "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 100,
         "layer_types": ["full_attention", "full_attention"]}
        """;

    [Fact]
    public void Qwen3IsReadWithHeadNormsAndItsWindowOff()
    {
        var c = LlamaConfig.Parse(Qwen3, "config.json");
        Assert.Equal("qwen3", c.ModelType);
        Assert.True(c.QueryKeyNorm);
        Assert.Equal(32, c.HeadDim);
        Assert.Equal(128, c.QueryWidth);
        Assert.Null(c.SlidingWindow);
        Assert.Equal(1e6, c.RopeTheta);
        // Qwen2.5 configs carry a sliding_window value with use_sliding_window false: still full attention.
        Assert.Null(LlamaConfig.Parse(Qwen3.Replace("\"sliding_window\": null", "\"sliding_window\": 4096"), "config.json").SlidingWindow);
        Assert.False(LlamaConfig.Parse(Minimal, "config.json").QueryKeyNorm);
    }

    [Fact]
    public void BiasesFollowTransformers()
    {
        // Qwen2: q/k/v biases whatever attention_bias says, none on o_proj or the MLP.
        var qwen2 = LlamaConfig.Parse(Qwen3.Replace("\"qwen3\"", "\"qwen2\"").Replace("\"attention_bias\": false", "\"attention_bias\": true"), "config.json");
        Assert.Equal((true, false, false, false), (qwen2.QkvBias, qwen2.OutputBias, qwen2.MlpBias, qwen2.QueryKeyNorm));
        // Qwen3 and Llama: attention_bias puts biases on all four attention projections; Llama's mlp_bias on the MLP.
        var qwen3 = LlamaConfig.Parse(Qwen3.Replace("\"attention_bias\": false", "\"attention_bias\": true"), "config.json");
        Assert.Equal((true, true, false), (qwen3.QkvBias, qwen3.OutputBias, qwen3.MlpBias));
        var llama = LlamaConfig.Parse(Minimal.Replace("\"vocab_size\": 100", "\"vocab_size\": 100, \"attention_bias\": true, \"mlp_bias\": true"), "config.json");
        Assert.Equal((true, true, true), (llama.QkvBias, llama.OutputBias, llama.MlpBias));
        // Mistral's projections have none in transformers, whatever the config says.
        var mistral = LlamaConfig.Parse(Minimal.Replace("\"llama\"", "\"mistral\"").Replace("\"vocab_size\": 100", "\"vocab_size\": 100, \"attention_bias\": true"), "config.json");
        Assert.False(mistral.QkvBias || mistral.OutputBias || mistral.MlpBias);
    }

    [Theory]
    [InlineData("\"use_sliding_window\": false", "\"use_sliding_window\": true", "use_sliding_window is true")]
    [InlineData("[\"full_attention\", \"full_attention\"]", "[\"full_attention\", \"sliding_attention\"]", "layer_types holds \"sliding_attention\"")]
    [InlineData("\"qwen3\"", "\"qwen3_moe\"", "mixture-of-experts layers are not implemented")]
    public void Qwen3LayoutsNotImplementedAreRefusedByField(string find, string replace, string expected)
    {
        var e = Assert.Throws<ModelFormatException>(() => LlamaConfig.Parse(Qwen3.Replace(find, replace), "/m/config.json"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("/m/config.json: ", e.Message);
    }

    [Theory]
    [InlineData("\"hidden_size\": 64,", "", "\"hidden_size\" is missing")]
    [InlineData("\"num_attention_heads\": 4", "\"num_attention_heads\": 5", "num_attention_heads (5) does not divide hidden_size (64)")]
    [InlineData("\"num_attention_heads\": 4", "\"num_attention_heads\": 4, \"num_key_value_heads\": 3", "num_key_value_heads (3) does not divide num_attention_heads (4)")]
    [InlineData("\"vocab_size\": 100", "\"vocab_size\": -1", "\"vocab_size\" must be positive")]
    [InlineData("\"vocab_size\": 100", "\"vocab_size\": \"big\"", "\"vocab_size\" must be an integer")]
    [InlineData("\"llama\"", "\"gpt2\"", "model_type \"gpt2\" is not supported")]
    [InlineData("\"vocab_size\": 100", "\"vocab_size\": 100, \"eos_token_id\": 100", "outside the vocabulary")]
    [InlineData("\"vocab_size\": 100", "\"vocab_size\": 100, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2}", "rope_scaling type \"yarn\" is not supported")]
    [InlineData("\"vocab_size\": 100", "\"vocab_size\": 100, \"rms_norm_eps\": 0", "rms_norm_eps must be a number in (0, 1)")]
    public void InconsistentConfigNamesTheFileAndTheField(string find, string replace, string expected)
    {
        var e = Assert.Throws<ModelFormatException>(() => LlamaConfig.Parse(Minimal.Replace(find, replace), "/m/config.json"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("/m/config.json: ", e.Message);
    }

    [Fact]
    public void InvalidJsonIsAFormatError()
    {
        var e = Assert.Throws<ModelFormatException>(() => LlamaConfig.Parse("{\"hidden_size\": ", "/m/config.json"));
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void MissingFileIsAFormatError()
    {
        string dir = Path.Combine(Path.GetTempPath(), "kangaroo-no-such-" + Guid.NewGuid());
        var e = Assert.Throws<ModelFormatException>(() => LlamaConfig.LoadFromDirectory(dir));
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void Llama3RopeScalingMatchesTheHuggingFaceFormula()
    {
        var c = LlamaConfig.Parse(Minimal.Replace("\"vocab_size\": 100", """
            "vocab_size": 100, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
            """), "config.json");
        float[] scaled = RotaryEmbedding.InverseFrequencies(c);
        float[] plain = RotaryEmbedding.InverseFrequencies(c with { RopeScaling = null });
        for (int i = 0; i < plain.Length; i++)
        {
            double wavelength = 2 * Math.PI / plain[i];
            if (wavelength < 64 / 4.0) Assert.Equal(plain[i], scaled[i]);
            else if (wavelength > 64 / 1.0) Assert.Equal(plain[i] / 8.0, scaled[i], 1e-6);
            else Assert.InRange(scaled[i], plain[i] / 8.0, plain[i]);
        }
        Assert.Contains(plain.Select((f, i) => (f, i)), p => 2 * Math.PI / p.f > 64);
    }

    [Fact]
    public void TransformersFiveRopeParametersAreRead()
    {
        var c = LlamaConfig.Parse(Minimal.Replace("\"vocab_size\": 100", """
            "vocab_size": 100,
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}
            """), "config.json");
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling("llama3", 8, 1, 4, 1024), c.RopeScaling);
        var plain = LlamaConfig.Parse(Minimal.Replace("\"vocab_size\": 100", """
            "vocab_size": 100, "rope_parameters": {"rope_type": "default", "rope_theta": 250000.0}
            """), "config.json");
        Assert.Equal(250000.0, plain.RopeTheta);
        Assert.Null(plain.RopeScaling);
    }
}
