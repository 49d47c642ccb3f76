namespace Kangaroo.Tests.TinyModels;

/// <summary>Complete model directories for end-to-end tests: a tiny random model plus the fixture tokenizer.</summary>
public static class TestModels
{
    /// <summary>The committed demo model, copied next to the test binaries.</summary>
    public static string DemoDirectory => Path.Combine(AppContext.BaseDirectory, "models", "demo");

    /// <summary>Vocabulary of the fixture tokenizers (spm_train --vocab_size=1500).</summary>
    public const int FixtureVocab = 1500;

    public static TinyModelSpec Spec(int layers = 3, int seed = 31) => new()
    {
        Name = "e2e", Hidden = 32, Intermediate = 64, Layers = layers, Heads = 4, KvHeads = 2, Vocab = FixtureVocab,
        MaxPositions = 512, Seed = seed,
    };

    /// <summary>Writes a model directory with the "llama" (default) or "code" fixture tokenizer.</summary>
    public static TinyModel Write(string directory, TinyModelSpec? spec = null, string tokenizer = "llama",
        Dictionary<string, float[]>? weights = null)
    {
        spec ??= Spec();
        var tiny = TinyModelFactory.Write(spec, directory, weights ?? TinyModelFactory.CreateWeights(spec));
        string fixture = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer", tokenizer);
        foreach (string file in new[] { "tokenizer.model", "tokenizer_config.json" })
            File.Copy(Path.Combine(fixture, file), Path.Combine(directory, file), overwrite: true);
        return tiny;
    }

    /// <summary>Writes a model with a near-identity deep half and an agreeing adapter in its kangaroo-adapter/ subfolder.</summary>
    public static TinyModel WriteWithAdapter(string directory, int layers = 4, int exitLayer = 2, float deepScale = 0.15f, int seed = 31)
    {
        var spec = Spec(layers, seed);
        var weights = TinyAdapterFactory.NearIdentityDeepLayers(spec, exitLayer, deepScale);
        var tiny = Write(directory, spec, weights: weights);
        TinyAdapterFactory.Write(spec, Path.Combine(directory, "kangaroo-adapter"),
            TinyAdapterFactory.AgreeingWeights(spec, weights, seed + 1, 0.1), exitLayer);
        return tiny;
    }
}
