using System.Globalization;
using System.Text.Json;
using Kangaroo.Backends.Cpu;
using Kangaroo.Model;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Model;

public class RandomModelWriterTests
{
    private static readonly int[] Tokens = [1, 17, 42, 5, 88, 3, 60, 17];

    private static LlamaConfig Shape(int hidden = 64, int ffn = 96, int layers = 3, int heads = 4, int kvHeads = 4,
        int? headDim = null, int vocab = 128, bool tied = false) => new()
    {
        HiddenSize = hidden,
        IntermediateSize = ffn,
        NumLayers = layers,
        NumHeads = heads,
        NumKvHeads = kvHeads,
        HeadDim = headDim ?? hidden / heads,
        VocabSize = vocab,
        RmsNormEps = 1e-5,
        TieWordEmbeddings = tied,
        BosTokenId = 1,
        EosTokenIds = [2],
    };

    /// <summary>Finite logits whose per-position spread is O(1): neither collapsed nor blown up.</summary>
    private static void AssertHealthyLogits(LlamaModel model)
    {
        float[] logits = model.EvaluateLogits(Tokens);
        int vocab = model.Config.VocabSize;
        Assert.All(logits, value => Assert.True(float.IsFinite(value), "non-finite logit"));
        for (int t = 0; t < Tokens.Length; t++)
        {
            var row = logits.AsSpan(t * vocab, vocab);
            double mean = 0, squares = 0;
            foreach (float v in row) mean += v;
            mean /= vocab;
            foreach (float v in row) squares += (v - mean) * (v - mean);
            double std = Math.Sqrt(squares / vocab);
            Assert.InRange(std, 0.3, 20.0);
        }
        Assert.False(logits.AsSpan(0, vocab).SequenceEqual(logits.AsSpan(vocab, vocab)), "positions give identical logits");
    }

    private static long ParameterCount(LlamaConfig config) =>
        LlamaModel.ExpectedTensors(config).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));

    [Fact]
    public void WrittenModelLoadsAndGivesFiniteSpreadLogits()
    {
        using var dir = new TestDirectory("random");
        var config = Shape();
        var summary = RandomModelWriter.Write(dir.Path, config, new RandomModelOptions { DType = DType.F16, Seed = 5 });

        Assert.Equal(ParameterCount(config), summary.Parameters);
        Assert.Equal(summary.Parameters * 2, summary.TensorBytes);
        Assert.Equal([Path.Combine(dir.Path, WeightStore.SingleFileName)], summary.WeightFiles);
        Assert.False(File.Exists(dir.Combine(WeightStore.IndexFileName)));

        var parsed = LlamaConfig.LoadFromDirectory(dir.Path);
        Assert.Equal((64, 96, 3, 4, 4, 16, 128), (parsed.HiddenSize, parsed.IntermediateSize, parsed.NumLayers, parsed.NumHeads, parsed.NumKvHeads, parsed.HeadDim, parsed.VocabSize));
        Assert.Equal("float16", parsed.TorchDType);
        Assert.Equal(1, parsed.BosTokenId);
        Assert.Equal([2], parsed.EosTokenIds);
        using var json = JsonDocument.Parse(File.ReadAllText(dir.Combine(LlamaConfig.FileName)));
        Assert.Equal("LlamaForCausalLM", json.RootElement.GetProperty("architectures")[0].GetString());
        Assert.False(json.RootElement.TryGetProperty("head_dim", out _), "head_dim is written only when it differs from hidden / heads");

        using var backend = new CpuBackend();
        using var model = LlamaModel.Load(dir.Path, backend);
        AssertHealthyLogits(model);
    }

    [Fact]
    public void ActivationsStayBoundedThroughManyLayers()
    {
        using var dir = new TestDirectory("random");
        RandomModelWriter.Write(dir.Path, Shape(hidden: 32, ffn: 64, layers: 32, heads: 2, kvHeads: 2), new RandomModelOptions { DType = DType.F32 });
        using var backend = new CpuBackend();
        using var model = LlamaModel.Load(dir.Path, backend);
        AssertHealthyLogits(model);
    }

    [Theory]
    [InlineData("gqa")]
    [InlineData("mqa")]
    [InlineData("tied")]
    [InlineData("head-dim")]
    [InlineData("bf16")]
    [InlineData("f32")]
    public void ShapesAndDTypesLoad(string variant)
    {
        var (config, dtype) = variant switch
        {
            "gqa" => (Shape(heads: 4, kvHeads: 2), DType.F16),
            "mqa" => (Shape(heads: 4, kvHeads: 1), DType.F16),
            "tied" => (Shape(kvHeads: 2, tied: true), DType.F16),
            "head-dim" => (Shape(hidden: 32, heads: 4, kvHeads: 2, headDim: 12), DType.F16),
            "bf16" => (Shape(kvHeads: 2), DType.BF16),
            "f32" => (Shape(), DType.F32),
            _ => throw new ArgumentException(variant),
        };
        using var dir = new TestDirectory("random");
        RandomModelWriter.Write(dir.Path, config, new RandomModelOptions { DType = dtype });

        var parsed = LlamaConfig.LoadFromDirectory(dir.Path);
        Assert.Equal(config.HeadDim, parsed.HeadDim);
        Assert.Equal(config.NumKvHeads, parsed.NumKvHeads);
        Assert.Equal(config.TieWordEmbeddings, parsed.TieWordEmbeddings);
        using (var weights = WeightStore.OpenDirectory(dir.Path))
        {
            var expected = LlamaModel.ExpectedTensors(config);
            Assert.Equal(expected.Count, weights.TensorNames.Count); // nothing extra: tied models have no lm_head
            foreach (var (name, shape) in expected) Assert.Equal(dtype, weights.Get(name, shape).DType);
        }
        using var backend = new CpuBackend();
        using var model = LlamaModel.Load(dir.Path, backend);
        AssertHealthyLogits(model);
    }

    [Fact]
    public void SameSeedGivesIdenticalFilesAndAnotherSeedDoesNot()
    {
        using var a = new TestDirectory("random");
        using var b = new TestDirectory("random");
        using var c = new TestDirectory("random");
        var config = Shape(kvHeads: 2);
        RandomModelWriter.Write(a.Path, config, new RandomModelOptions { Seed = 42 });
        RandomModelWriter.Write(b.Path, config, new RandomModelOptions { Seed = 42 });
        RandomModelWriter.Write(c.Path, config, new RandomModelOptions { Seed = 43 });

        foreach (string name in new[] { LlamaConfig.FileName, WeightStore.SingleFileName })
            Assert.Equal(File.ReadAllBytes(a.Combine(name)), File.ReadAllBytes(b.Combine(name)));
        Assert.NotEqual(File.ReadAllBytes(a.Combine(WeightStore.SingleFileName)), File.ReadAllBytes(c.Combine(WeightStore.SingleFileName)));
    }

    [Fact]
    public void TensorsAreIndependentAndScaledAsDocumented()
    {
        using var dir = new TestDirectory("random");
        var config = Shape(hidden: 64, ffn: 128, layers: 2, vocab: 256);
        RandomModelWriter.Write(dir.Path, config, new RandomModelOptions { DType = DType.F32 });
        using var weights = WeightStore.OpenDirectory(dir.Path);

        float[] embeddings = weights.Get("model.embed_tokens.weight").ToFloat32Array();
        Assert.InRange(StandardDeviation(embeddings), 0.95, 1.05);
        float[] norm = weights.Get("model.layers.0.input_layernorm.weight").ToFloat32Array();
        Assert.All(norm, v => Assert.InRange(v, 0.8f, 1.2f));
        // U(-1, 1)·√(3 / in)·gain has standard deviation gain / √in: gate_proj has gain 1, down_proj 1 / √(2·layers).
        Assert.InRange(StandardDeviation(weights.Get("model.layers.0.mlp.gate_proj.weight").ToFloat32Array()) * Math.Sqrt(64), 0.95, 1.05);
        Assert.InRange(StandardDeviation(weights.Get("model.layers.0.mlp.down_proj.weight").ToFloat32Array()) * Math.Sqrt(128), 0.47, 0.53);
        // Same shape, different tensor index: different values.
        Assert.NotEqual(weights.Get("model.layers.0.mlp.gate_proj.weight").ToFloat32Array(), weights.Get("model.layers.0.mlp.up_proj.weight").ToFloat32Array());
        Assert.NotEqual(weights.Get("model.layers.0.mlp.gate_proj.weight").ToFloat32Array(), weights.Get("model.layers.1.mlp.gate_proj.weight").ToFloat32Array());
    }

    private static double StandardDeviation(float[] values)
    {
        double mean = values.Average(v => (double)v);
        return Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
    }

    [Fact]
    public void ShardedOutputLoadsAndHoldsTheUnshardedValues()
    {
        using var single = new TestDirectory("random");
        using var sharded = new TestDirectory("random");
        var config = Shape(kvHeads: 2);
        const long MaxShardBytes = 40_000; // a 128 × 64 F16 embedding is 16 KiB: several tensors per shard, several shards
        RandomModelWriter.Write(single.Path, config, new RandomModelOptions { Seed = 9 });
        var summary = RandomModelWriter.Write(sharded.Path, config, new RandomModelOptions { Seed = 9, MaxShardBytes = MaxShardBytes });

        int shardCount = summary.WeightFiles.Count;
        Assert.True(shardCount > 2, $"expected several shards, got {shardCount}");
        for (int s = 0; s < shardCount; s++)
        {
            Assert.Equal($"model-{s + 1:D5}-of-{shardCount:D5}.safetensors", Path.GetFileName(summary.WeightFiles[s]));
            using var shard = WeightStore.OpenFile(summary.WeightFiles[s]);
            long dataBytes = shard.TensorNames.Sum(name => shard.Get(name).ByteLength);
            Assert.True(dataBytes <= MaxShardBytes, $"shard {s + 1} holds {dataBytes} tensor bytes");
        }
        Assert.False(File.Exists(sharded.Combine(WeightStore.SingleFileName)));

        using var index = JsonDocument.Parse(File.ReadAllText(sharded.Combine(WeightStore.IndexFileName)));
        Assert.Equal(summary.TensorBytes, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        Assert.Equal(LlamaModel.ExpectedTensors(config).Count, index.RootElement.GetProperty("weight_map").EnumerateObject().Count());

        using (var a = WeightStore.OpenDirectory(single.Path))
        using (var b = WeightStore.OpenDirectory(sharded.Path))
        {
            foreach (var (name, shape) in LlamaModel.ExpectedTensors(config))
                Assert.True(a.Get(name, shape).Bytes.SequenceEqual(b.Get(name, shape).Bytes), $"{name} differs between single and sharded");
        }
        using var backend = new CpuBackend();
        using var singleModel = LlamaModel.Load(single.Path, backend);
        using var shardedModel = LlamaModel.Load(sharded.Path, backend);
        Assert.Equal(singleModel.EvaluateLogits(Tokens), shardedModel.EvaluateLogits(Tokens));
    }

    [Fact]
    public void ProgressReachesTheTotalAndTokenizerIsCopied()
    {
        using var dir = new TestDirectory("random");
        string tokenizer = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer", "llama");
        var reports = new List<LoadProgress>();
        var summary = RandomModelWriter.Write(dir.Path, Shape(vocab: 1500), new RandomModelOptions
        {
            TokenizerDirectory = tokenizer,
            Progress = new CollectingProgress(reports),
        });
        Assert.NotEmpty(reports);
        Assert.Equal(summary.TensorBytes, reports[^1].LoadedBytes);
        Assert.All(reports, r => Assert.Equal(summary.TensorBytes, r.TotalBytes));
        Assert.Equal(File.ReadAllBytes(Path.Combine(tokenizer, "tokenizer.model")), File.ReadAllBytes(dir.Combine("tokenizer.model")));
        Assert.True(File.Exists(dir.Combine("tokenizer_config.json")));
    }

    private sealed class CollectingProgress(List<LoadProgress> reports) : IProgress<LoadProgress>
    {
        public void Report(LoadProgress value) => reports.Add(value);
    }

    [Fact]
    public void RefusesToMixWithAnExistingModelUnlessOverwriting()
    {
        using var dir = new TestDirectory("random");
        RandomModelWriter.Write(dir.Path, Shape(), new RandomModelOptions { MaxShardBytes = 40_000 });
        Assert.Throws<KangarooException>(() => RandomModelWriter.Write(dir.Path, Shape(), new RandomModelOptions()));

        // Overwriting a sharded model with a single-file one removes the stale shards and index.
        RandomModelWriter.Write(dir.Path, Shape(), new RandomModelOptions { Overwrite = true });
        Assert.Empty(Directory.GetFiles(dir.Path, "model-*"));
        Assert.False(File.Exists(dir.Combine(WeightStore.IndexFileName)));
        using var backend = new CpuBackend();
        using var model = LlamaModel.Load(dir.Path, backend);
    }

    [Fact]
    public void InconsistentConfigsAndSmallVocabulariesAreRefusedBeforeWriting()
    {
        using var dir = new TestDirectory("random");
        Assert.Throws<ModelFormatException>(() => RandomModelWriter.Write(dir.Path, Shape(heads: 4, kvHeads: 3)));
        string tokenizer = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer", "llama");
        Assert.Throws<KangarooException>(() => RandomModelWriter.Write(dir.Path, Shape(vocab: 100), new RandomModelOptions { TokenizerDirectory = tokenizer }));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void StreamedSafeTensorsEqualBufferedOnes()
    {
        float[] first = [1, 2, 3, 4, 5, 6];
        float[] second = [0.5f, -0.25f];
        var buffered = new MemoryStream();
        new SafeTensorsWriter().AddMetadata("format", "pt")
            .Add("a", DType.F16, [2, 3], first).Add("b", DType.F32, [2], second).WriteTo(buffered);

        var streamed = new MemoryStream();
        var writer = new SafeTensorsWriter().AddMetadata("format", "pt").Declare("a", DType.F16, [2, 3]).Declare("b", DType.F32, [2]);
        Assert.Equal(6 * 2 + 2 * 4, writer.DataByteLength);
        writer.WriteHeader(streamed);
        streamed.Write(DTypeConversion.FromFloat32(DType.F16, first));
        streamed.Write(DTypeConversion.FromFloat32(DType.F32, second));

        Assert.Equal(buffered.ToArray(), streamed.ToArray());
        Assert.Throws<InvalidOperationException>(() => writer.WriteTo(new MemoryStream()));
    }

    // ---- CLI ----

    private static (int ExitCode, string Stdout, string Stderr) RunCli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Kangaroo.Cli.Cli.Run(args, stdout, stderr, new StringReader(""));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void CliWritesAModelThatInspectCounts()
    {
        using var dir = new TestDirectory("random");
        var (code, stdout, stderr) = RunCli("random-model", dir.Path, "--hidden", "48", "--layers", "2", "--heads", "4",
            "--kv-heads", "2", "--ffn", "80", "--vocab", "100", "--dtype", "bf16", "--seed", "3", "--shard-size", "20KB", "--tie-embeddings");
        Assert.True(code == 0, stderr);
        var config = LlamaConfig.LoadFromDirectory(dir.Path);
        Assert.Equal((48, 80, 2, 4, 2, 100, true), (config.HiddenSize, config.IntermediateSize, config.NumLayers, config.NumHeads, config.NumKvHeads, config.VocabSize, config.TieWordEmbeddings));
        Assert.Equal("bfloat16", config.TorchDType);
        Assert.True(File.Exists(dir.Combine(WeightStore.IndexFileName)));
        long parameters = ParameterCount(config);
        Assert.Contains(parameters.ToString("N0", CultureInfo.InvariantCulture), stdout);

        var (inspectCode, inspectOut, inspectErr) = RunCli("inspect", "--model", dir.Path);
        Assert.True(inspectCode == 0, inspectErr);
        Assert.Contains($"parameters:  {parameters.ToString("N0", CultureInfo.InvariantCulture)} ", inspectOut);
        Assert.Contains("BF16", inspectOut);

        // An existing model is kept unless --force.
        Assert.Equal(2, RunCli("random-model", dir.Path, "--hidden", "32", "--layers", "1", "--heads", "2").ExitCode);
        Assert.Equal(0, RunCli("random-model", dir.Path, "--hidden", "32", "--layers", "1", "--heads", "2", "--vocab", "64", "--force").ExitCode);
    }

    [Fact]
    public void CliWritesQwen3AndLlama3ShapedModelsThatLoadAndDraft()
    {
        // The 8B presets with their layer count and widths cut down: everything else (architecture, GQA, head_dim,
        // rope, eps, dtype) is the preset's.
        using var qwen = new TestDirectory("random");
        var (code, stdout, stderr) = RunCli("random-model", qwen.Path, "--preset", "qwen3-8b", "--layers", "2", "--hidden", "64",
            "--ffn", "96", "--vocab", "300", "--head-dim", "16", "--adapter-exit-layer", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("shape:       qwen3, 2 layers", stdout);
        var config = LlamaConfig.LoadFromDirectory(qwen.Path);
        Assert.Equal(("qwen3", true, 32, 8, 16, 1e6, 1e-6, "bfloat16"),
            (config.ModelType, config.QueryKeyNorm, config.NumHeads, config.NumKvHeads, config.HeadDim, config.RopeTheta, config.RmsNormEps, config.TorchDType));
        // Two head norms of head_dim per layer on top of the Llama layout's tensors.
        Assert.Equal(ParameterCount(config with { QueryKeyNorm = false }) + 2 * 2 * 16, ParameterCount(config));
        Assert.Contains(ParameterCount(config).ToString("N0", CultureInfo.InvariantCulture), stdout);
        var (inspectCode, inspectOut, inspectErr) = RunCli("inspect", "--model", qwen.Path);
        Assert.True(inspectCode == 0, inspectErr);
        Assert.Contains("head dim 16, q/k head norms", inspectOut);
        var (benchCode, benchOut, benchErr) = RunCli("bench", "--model", qwen.Path, "--backend", "cpu", "--context", "32", "--repetitions", "1",
            "--verify-rows", "1,4");
        Assert.True(benchCode == 0, benchErr);
        Assert.Contains("draft step:", benchOut);

        using var llama3 = new TestDirectory("random");
        (code, _, stderr) = RunCli("random-model", llama3.Path, "--preset", "llama3-8b", "--layers", "1", "--hidden", "64", "--ffn", "96", "--vocab", "300");
        Assert.True(code == 0, stderr);
        config = LlamaConfig.LoadFromDirectory(llama3.Path);
        Assert.Equal(("llama", 8, 500000.0, new RopeScaling("llama3", 8, 1, 4, 8192)), (config.ModelType, config.NumKvHeads, config.RopeTheta, config.RopeScaling));

        // Qwen2 (q/k/v biases) and Llama with every projection biased: written, loaded, drafted with their adapters.
        foreach (string[] shape in new[]
                 {
                     new[] { "--preset", "qwen2.5-7b", "--layers", "2", "--hidden", "56", "--ffn", "96", "--vocab", "300" },
                     new[] { "--architecture", "llama", "--attention-bias", "--mlp-bias", "--hidden", "32", "--layers", "2", "--heads", "4", "--vocab", "300" },
                 })
        {
            using var biased = new TestDirectory("random");
            (code, _, stderr) = RunCli(["random-model", biased.Path, .. shape, "--adapter-exit-layer", "1"]);
            Assert.True(code == 0, stderr);
            config = LlamaConfig.LoadFromDirectory(biased.Path);
            Assert.True(config.QkvBias);
            Assert.Equal(shape.Contains("--mlp-bias"), config.MlpBias && config.OutputBias);
            (benchCode, benchOut, benchErr) = RunCli("bench", "--model", biased.Path, "--backend", "cpu", "--context", "32", "--repetitions", "1", "--verify-rows", "1,4");
            Assert.True(benchCode == 0, benchErr);
            Assert.Contains("draft step:", benchOut);
        }

        Assert.Equal(2, RunCli("random-model", llama3.Path, "--force", "--architecture", "qwen2", "--attention-bias", "--hidden", "32", "--layers", "1", "--heads", "2").ExitCode);
        Assert.Equal(2, RunCli("random-model", llama3.Path, "--force", "--architecture", "qwen3", "--mlp-bias", "--hidden", "32", "--layers", "1", "--heads", "2").ExitCode);
        Assert.Equal(2, RunCli("random-model", llama3.Path, "--force", "--architecture", "gpt2", "--hidden", "32", "--layers", "1", "--heads", "2").ExitCode);
    }

    [Fact]
    public void CliTinyPresetTakesTheTokenizersVocabulary()
    {
        using var dir = new TestDirectory("random");
        string tokenizer = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer", "llama");
        // Smaller than the real preset (fewer layers) to keep the test fast; everything else comes from tiny-10m.
        var (code, _, stderr) = RunCli("random-model", dir.Path, "--preset", "tiny-10m", "--layers", "1", "--tokenizer-from", tokenizer);
        Assert.True(code == 0, stderr);
        var config = LlamaConfig.LoadFromDirectory(dir.Path);
        Assert.Equal((256, 688, 8, 32), (config.HiddenSize, config.IntermediateSize, config.NumHeads, config.HeadDim));
        Assert.Equal(Kangaroo.Tokenization.TextTokenizer.Load(tokenizer).VocabularySize, config.VocabSize);
        Assert.Equal("float16", config.TorchDType);
        Assert.True(File.Exists(dir.Combine("tokenizer.model")));
    }

    [Theory]
    [InlineData("random-model")]
    [InlineData("random-model", "a", "b", "--preset", "tiny-10m")]
    [InlineData("random-model", "OUT", "--preset", "llama3-405b")]
    [InlineData("random-model", "OUT", "--layers", "2", "--heads", "2")]
    [InlineData("random-model", "OUT", "--hidden", "30", "--layers", "2", "--heads", "4")]
    [InlineData("random-model", "OUT", "--hidden", "32", "--layers", "2", "--heads", "4", "--kv-heads", "3")]
    [InlineData("random-model", "OUT", "--hidden", "32", "--layers", "0", "--heads", "4")]
    [InlineData("random-model", "OUT", "--hidden", "32", "--layers", "2", "--heads", "4", "--head-dim", "7")]
    [InlineData("random-model", "OUT", "--preset", "tiny-10m", "--dtype", "f8")]
    [InlineData("random-model", "OUT", "--preset", "tiny-10m", "--shard-size", "2XB")]
    [InlineData("random-model", "OUT", "--preset", "tiny-10m", "--shard-size", "-5MB")]
    [InlineData("random-model", "OUT", "--preset", "tiny-10m", "--seed", "-1")]
    [InlineData("random-model", "OUT", "--preset", "tiny-10m", "--tokenizer-from", "MISSING")]
    [InlineData("random-model", "OUT", "--preset", "tiny-10m", "--bogus")]
    public void CliUsageMistakesExitWithTwoAndWriteNothing(params string[] args)
    {
        using var dir = new TestDirectory("random");
        string output = dir.Combine("out");
        string[] resolved = [.. args.Select(arg => arg switch
        {
            "OUT" => output,
            "MISSING" => dir.Combine("no-such-tokenizer"),
            _ => arg,
        })];
        var (code, _, stderr) = RunCli(resolved);
        Assert.Equal(2, code);
        Assert.StartsWith("kangaroo: ", stderr);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void CliHelpDescribesThePresets()
    {
        var (code, stdout, _) = RunCli("random-model", "--help");
        Assert.Equal(0, code);
        Assert.Contains("llama2-7b", stdout);
        Assert.Contains("tiny-10m", stdout);
        Assert.Contains("random-model", RunCli("--help").Stdout);
    }
}
