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
