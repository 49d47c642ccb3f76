using Kangaroo.Model;
using Kangaroo.Backends;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Speculative;
using Kangaroo.Tests.CommandLine;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Model;

/// <summary>
/// One test per class of defect that mutating model directories found: hangs on files that never end, crashes on
/// unbounded reads, raw exceptions, silently accepted configurations and errors that name the wrong thing. Every case
/// must end in a <see cref="KangarooException"/> naming the file and field or tensor, within seconds.
/// </summary>
public sealed class BadInputRegressionTests : IDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);
    private readonly TestDirectory _dir = new("bad-input");
    private readonly CpuBackend _backend = new();

    public void Dispose()
    {
        _backend.Dispose();
        _dir.Dispose();
    }

    private string Model => _dir.Combine("model");
    private string Adapter => Path.Combine(Model, KangarooAdapter.DefaultSubdirectory);

    private void WriteModel(Dictionary<string, float[]>? weights = null)
    {
        if (weights is null) TestModels.WriteWithAdapter(Model);
        else TestModels.Write(Model, TestModels.Spec(), weights: weights);
    }

    /// <summary>Loads and generates two tokens (greedy, then Kangaroo when an adapter loaded), within <see cref="Limit"/>.</summary>
    private void LoadAndGenerate()
    {
        var work = Task.Run(() =>
        {
            using var model = LanguageModel.Load(Model, new ModelLoadOptions { Backend = _backend });
            model.Generate("def f(x):", new GenerationOptions { MaxNewTokens = 2 });
            if (model.Adapter is not null)
                model.Generate("def f(x):", new GenerationOptions { MaxNewTokens = 2, Speculation = new KangarooOptions() });
        });
        Assert.True(work.Wait(Limit), $"loading did not end within {Limit.TotalSeconds} s");
    }

    private T Refused<T>(params string[] expectedInMessage) where T : KangarooException
    {
        var e = Assert.Throws<AggregateException>(LoadAndGenerate).InnerException;
        var refusal = Assert.IsType<T>(e, exactMatch: false);
        foreach (string expected in expectedInMessage) Assert.Contains(expected, refusal.Message);
        return refusal;
    }

    private void EditConfig(string path, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(node);
        File.WriteAllText(path, node.ToJsonString());
    }

    private string BaseConfig => Path.Combine(Model, "config.json");
    private string AdapterConfig => Path.Combine(Adapter, "config.json");

    private static void MakeFifo(string path)
    {
        File.Delete(path);
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }

    private static void LinkTo(string path, string target)
    {
        File.Delete(path);
        File.CreateSymbolicLink(path, target);
    }

    // Hangs and crashes: files that are not regular files are refused before they are opened.

    [Theory]
    [InlineData("config.json")]
    [InlineData("tokenizer.model")]
    [InlineData("tokenizer_config.json")]
    [InlineData("generation_config.json")]
    [InlineData("model.safetensors")]
    [InlineData("kangaroo-adapter/config.json")]
    [InlineData("kangaroo-adapter/model.safetensors")]
    public void Fifo_IsRefusedWithoutBlocking(string file)
    {
        WriteModel();
        string path = Path.Combine(Model, file);
        MakeFifo(path);
        var e = Refused<ModelFormatException>("not a regular file");
        Assert.Equal(path, e.Path);
    }

    [Theory]
    [InlineData("config.json", "/dev/zero")]
    [InlineData("config.json", "/dev/urandom")]
    [InlineData("tokenizer.model", "/dev/zero")]
    [InlineData("tokenizer.model", "/dev/urandom")]
    [InlineData("model.safetensors", "/dev/zero")]
    [InlineData("kangaroo-adapter/config.json", "/dev/zero")]
    public void SymlinkToAnEndlessDevice_IsRefused(string file, string device)
    {
        WriteModel();
        string path = Path.Combine(Model, file);
        LinkTo(path, device);
        var e = Refused<ModelFormatException>("not a regular file");
        Assert.Equal(path, e.Path);
    }

    [Fact]
    public void PyTorchAdapterLinkedToDevZero_IsRefused()
    {
        WriteModel();
        File.Delete(Path.Combine(Adapter, "model.safetensors"));
        LinkTo(Path.Combine(Adapter, "pytorch_model.bin"), "/dev/zero");
        Refused<ModelFormatException>("pytorch_model.bin", "not a regular file");
    }

    [Fact]
    public void SymlinkLoopAndDanglingLink_AreNamed()
    {
        WriteModel();
        string config = BaseConfig;
        File.Delete(config);
        File.CreateSymbolicLink(config, config);
        Refused<ModelFormatException>("config.json", "symbolic link");
        File.Delete(config);
        File.CreateSymbolicLink(config, _dir.Combine("nowhere.json"));
        Refused<ModelFormatException>("config.json", "does not exist");
    }

    [Fact]
    public void SymlinkToARegularFile_Loads()
    {
        // Hugging Face caches lay models out as links to blobs.
        WriteModel();
        string blob = _dir.Combine("blob-config");
        File.Move(BaseConfig, blob);
        File.CreateSymbolicLink(BaseConfig, blob);
        LoadAndGenerate();
    }

    [Fact]
    public void OversizedConfig_IsRefusedByItsSize()
    {
        WriteModel();
        using (var stream = new FileStream(BaseConfig, FileMode.Open, FileAccess.Write)) stream.SetLength(5L << 30);
        Refused<ModelFormatException>("config.json", "over the", "limit");
    }

    [Fact]
    public void OptionalFileThatIsADirectory_IsNamed()
    {
        WriteModel();
        Directory.CreateDirectory(Path.Combine(Model, "generation_config.json"));
        Refused<ModelFormatException>("generation_config.json", "is a directory");
    }

    [Theory]
    [InlineData(100_000_000)]
    [InlineData(int.MaxValue)]
    public void HugeLayerCount_FailsAtOnceNamingTheField(int layers)
    {
        WriteModel();
        EditConfig(BaseConfig, c => c["num_hidden_layers"] = layers);
        var clock = Stopwatch.StartNew();
        var e = Refused<ModelFormatException>("num_hidden_layers", $"{layers}", "4 decoder layers");
        Assert.Equal(BaseConfig, e.Path);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    // Raw exceptions.

    [Fact]
    public void AdapterConfigWithComments_ReadsLikeTheBaseConfig()
    {
        WriteModel();
        File.WriteAllText(AdapterConfig, "// written by hand\n" + File.ReadAllText(AdapterConfig).Replace("{", "{ /* adapter */", StringComparison.Ordinal));
        LoadAndGenerate();
    }

    [Theory]
    [InlineData(65536, 65536)]
    [InlineData(2_000_000_000, 2)]
    public void SizeProductsThatOverflow_AreRefusedByField(int heads, int headDim)
    {
        WriteModel();
        EditConfig(BaseConfig, c =>
        {
            c["num_attention_heads"] = heads;
            c["num_key_value_heads"] = heads;
            c["head_dim"] = headDim;
        });
        Refused<ModelFormatException>("num_attention_heads × head_dim");
    }

    // Silently accepted configurations.

    [Theory]
    [InlineData("rope_parameters", "3")]
    [InlineData("rope_parameters", "\"llama3\"")]
    [InlineData("rope_parameters", "[1, 2]")]
    [InlineData("rope_scaling", "3")]
    [InlineData("rope_scaling", "\"linear\"")]
    [InlineData("rope_scaling", "[]")]
    public void RopeSettingsOfTheWrongType_AreNamed(string field, string json)
    {
        WriteModel();
        EditConfig(BaseConfig, c => c[field] = JsonNode.Parse(json));
        Refused<ModelFormatException>(field);
    }

    [Fact]
    public void RopeScalingBesideRopeParameters_IsStillChecked()
    {
        WriteModel();
        EditConfig(BaseConfig, c =>
        {
            c["rope_parameters"] = JsonNode.Parse("""{"rope_type": "default", "rope_theta": 10000.0}""");
            c["rope_scaling"] = "yarn";
        });
        Refused<ModelFormatException>("rope_scaling");
    }

    [Theory]
    [InlineData("config.json")]
    [InlineData("kangaroo-adapter/config.json")]
    public void UnimplementedFeatures_AreRefusedByName(string file)
    {
        foreach (var (field, value) in new (string, JsonNode)[]
                 {
                     ("hidden_act", "gelu"), ("hidden_act", 5),
                     ("quantization_config", JsonNode.Parse("""{"quant_method": "gptq"}""")!),
                 })
        {
            if (Directory.Exists(Model)) Directory.Delete(Model, recursive: true);
            WriteModel();
            EditConfig(Path.Combine(Model, file), c => c[field] = value.DeepClone());
            var e = Refused<ModelFormatException>(field);
            Assert.Equal(Path.Combine(Model, file), e.Path);
        }
    }

    /// <summary>attention_bias / mlp_bias are read now: a config that declares biases its checkpoint lacks names the field and the tensor.</summary>
    [Theory]
    [InlineData("attention_bias", "model.layers.0.self_attn.q_proj.bias")]
    [InlineData("mlp_bias", "model.layers.0.mlp.gate_proj.bias")]
    public void DeclaredBiasesTheWeightsLack_AreNamed(string field, string tensor)
    {
        WriteModel();
        EditConfig(BaseConfig, c => c[field] = true);
        var e = Refused<ModelFormatException>(field, tensor);
        Assert.Equal(BaseConfig, e.Path);
        // The adapter's config is its base's: one declaring biases its base lacks is refused by name too.
        Directory.Delete(Model, recursive: true);
        WriteModel();
        EditConfig(AdapterConfig, c => c[field] = true);
        Refused<ModelFormatException>(field, "an adapter follows its base model's architecture");
    }

    /// <summary>
    /// A sliding window shorter than the context loads where the backend slides (the CPU backend here) and is refused by
    /// name where it does not: a backend that says it has no sliding-window attention, through every entry point.
    /// </summary>
    [Fact]
    public void SlidingWindowSmallerThanTheContext_LoadsWhereTheBackendSlides_IsRefusedElsewhere()
    {
        WriteModel();
        EditConfig(BaseConfig, c => c["sliding_window"] = 16);
        Refused<ModelFormatException>("sliding_window is 16", "only model_type \"mistral\" slides its window");
        EditConfig(BaseConfig, c => c["model_type"] = "mistral");
        EditConfig(AdapterConfig, c => { c["model_type"] = "mistral"; c["sliding_window"] = 16; });
        LoadAndGenerate();
        var config = LlamaConfig.LoadFromDirectory(Model);
        Assert.Equal(16, config.SlidingWindow);
        var noWindow = NoSlidingWindow.Wrap(_backend);
        var e = Assert.Throws<ModelFormatException>(() => config.CheckContext(64, noWindow));
        Assert.Contains("sliding_window is 16 but the context is 64", e.Message);
        Assert.Contains("does not implement sliding-window attention", e.Message);
        config.CheckContext(16, noWindow);
        var load = Assert.Throws<ModelFormatException>(() => { using var refused = LanguageModel.Load(Model, new ModelLoadOptions { Backend = noWindow, ContextLength = 64 }); });
        Assert.Contains("does not implement sliding-window attention", load.Message);
        // The model's own refusal of a position past the window, for callers that skip these checks, runs in the model
        // conformance suite on the CUDA backend (TinyModelSpec.MistralWindow).
    }

    /// <summary>
    /// A backend as the inner one, but without sliding-window attention (as the CUDA backend today). DispatchProxy cannot
    /// forward span arguments, so it serves checks that run before any weight is loaded.
    /// </summary>
    public class NoSlidingWindow : System.Reflection.DispatchProxy
    {
        private IComputeBackend _inner = null!;

        public static IComputeBackend Wrap(IComputeBackend inner)
        {
            var proxy = Create<IComputeBackend, NoSlidingWindow>();
            ((NoSlidingWindow)(object)proxy)._inner = inner;
            return proxy;
        }

        protected override object? Invoke(System.Reflection.MethodInfo? method, object?[]? args)
        {
            if (method!.Name == "get_" + nameof(IComputeBackend.SupportsSlidingWindow)) return false;
            if (method.Name == nameof(IDisposable.Dispose)) return null;   // the inner backend belongs to the test class
            try
            {
                return method.Invoke(_inner, args);
            }
            catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
                throw;
            }
        }
    }

    [Fact]
    public void FewerLayersThanTheCheckpointHolds_IsRefused()
    {
        WriteModel();
        EditConfig(BaseConfig, c => c["num_hidden_layers"] = 2);
        var e = Refused<ModelFormatException>("num_hidden_layers is 2", "4 decoder layers");
        Assert.Equal(BaseConfig, e.Path);
    }

    [Theory]
    [InlineData("""{"rope_theta": 1e-300}""", "rope_theta")]
    [InlineData("""{"rope_theta": 0.5}""", "rope_theta")]
    [InlineData("""{"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 1e-45, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}""", "rope_parameters")]
    [InlineData("""{"rms_norm_eps": 1e300}""", "rms_norm_eps")]
    [InlineData("""{"rms_norm_eps": 1e-50}""", "rms_norm_eps")]
    public void RotaryAndNormValuesThatBreakTheArithmetic_AreRefused(string fields, string named)
    {
        WriteModel();
        EditConfig(BaseConfig, c =>
        {
            foreach (var (key, value) in JsonNode.Parse(fields)!.AsObject()) c[key] = value?.DeepClone();
        });
        Refused<ModelFormatException>(named);
    }

    /// <summary>Rewrites a directory's model.safetensors with extra tensors beside its own.</summary>
    private static void AddTensors(string directory, params (string Name, int[] Shape)[] extra)
    {
        var writer = new Kangaroo.Weights.SafeTensorsWriter();
        using (var weights = Kangaroo.Weights.WeightStore.OpenDirectory(directory))
        {
            foreach (string name in weights.TensorNames)
                writer.Add(name, Kangaroo.Weights.DType.F32, [.. weights.Get(name).Shape], weights.Get(name).ToFloat32Array());
        }
        foreach (var (name, shape) in extra) writer.Add(name, Kangaroo.Weights.DType.F32, shape, new float[shape.Aggregate(1, (a, b) => a * b)]);
        writer.WriteTo(Path.Combine(directory, "model.safetensors"));
    }

    [Fact]
    public void TensorsTheConfigDoesNotUse_AreNamed()
    {
        WriteModel();
        AddTensors(Model, ("model.layers.0.self_attn.q_proj.bias", [32]), ("model.extra.weight", [4]));
        Refused<ModelFormatException>("model.layers.0.self_attn.q_proj.bias", "model.extra.weight", "biases the config does not declare");
    }

    [Fact]
    public void DerivedRotaryBuffers_AreIgnored()
    {
        WriteModel();
        AddTensors(Model, ("model.layers.0.self_attn.rotary_emb.inv_freq", [4]));
        LoadAndGenerate();
    }

    [Fact]
    public void AdapterTensorsItDoesNotUse_AreNamed()
    {
        WriteModel();
        AddTensors(Adapter, ("layers.0.mlp.gate_proj.weight", [64, 32]));
        Refused<ModelFormatException>("layers.0.mlp.gate_proj.weight");
    }

    [Fact]
    public void AdapterOfSeveralLayers_IsRefused()
    {
        WriteModel();
        EditConfig(AdapterConfig, c => c["num_hidden_layers"] = 2);
        Refused<ModelFormatException>("num_hidden_layers is 2", "one attention layer");
    }

    [Fact]
    public void TiedHeadMismatch_NamesTieWordEmbeddings()
    {
        WriteModel();
        EditConfig(BaseConfig, c => c["tie_word_embeddings"] = true);
        Refused<ModelFormatException>("tie_word_embeddings", "lm_head.weight");
    }

    [Theory]
    [InlineData("generation_config.json", "do_sample", "\"yes\"")]
    [InlineData("generation_config.json", "temperature", "\"hot\"")]
    [InlineData("config.json", "tie_word_embeddings", "\"no\"")]
    [InlineData("config.json", "sliding_window", "\"big\"")]
    [InlineData("tokenizer_config.json", "add_bos_token", "1")]
    [InlineData("generation_config.json", "temperature", "-1")]
    [InlineData("generation_config.json", "top_p", "0")]
    [InlineData("generation_config.json", "top_k", "-3")]
    [InlineData("generation_config.json", "max_new_tokens", "0")]
    public void FieldOfTheWrongJsonType_IsNamed(string file, string field, string json)
    {
        WriteModel();
        string path = Path.Combine(Model, file);
        if (!File.Exists(path)) File.WriteAllText(path, "{}");
        EditConfig(path, c => c[field] = JsonNode.Parse(json));
        var e = Refused<ModelFormatException>(field);
        Assert.Equal(path, e.Path);
    }

    [Fact]
    public void StringsThatAreNotText_AreRefusedNamingTheFile()
    {
        // A lone surrogate escape parses as JSON but cannot be read as a string; invalid UTF-8 in the shard index.
        WriteModel();
        EditConfig(BaseConfig, c => c["model_type"] = "PLACEHOLDER");
        File.WriteAllText(BaseConfig, File.ReadAllText(BaseConfig).Replace("PLACEHOLDER", "\\ud800", StringComparison.Ordinal));
        var e = Refused<ModelFormatException>("not valid text");
        Assert.Equal(BaseConfig, e.Path);

        Directory.Delete(Model, recursive: true);
        TestModels.Write(Model, TestModels.Spec() with { Shards = 2 });
        string index = Path.Combine(Model, Kangaroo.Weights.WeightStore.IndexFileName);
        byte[] bytes = File.ReadAllBytes(index);
        int at = Array.IndexOf(bytes, (byte)'m', bytes.Length / 2);
        bytes[at] = 0xC3;
        bytes[at + 1] = 0x28;
        File.WriteAllBytes(index, bytes);
        e = Refused<ModelFormatException>("not valid UTF-8");
        Assert.Equal(index, e.Path);
    }

    // Errors that named the wrong thing.

    [Fact]
    public void TokenizerLargerThanTheVocabulary_NamesConfigAndTokenizer()
    {
        WriteModel();
        // The tokenizer keeps its 1,500 pieces; the model claims fewer. The config is the file named.
        var weights = TinyModelFactory.CreateWeights(TestModels.Spec() with { Vocab = 1000 });
        TestModels.Write(Model, TestModels.Spec() with { Vocab = 1000 }, weights: weights);
        var e = Refused<ModelFormatException>("vocab_size is 1000", "tokenizer.model", "1500");
        Assert.Equal(BaseConfig, e.Path);
    }

    [Fact]
    public void ConfigSizeThatDisagreesWithEveryTensor_IsTheConfigsError()
    {
        WriteModel();
        EditConfig(BaseConfig, c => c["hidden_size"] = 48);
        var e = Refused<ModelFormatException>("hidden_size is 48", "model.embed_tokens.weight");
        Assert.Equal(BaseConfig, e.Path);
    }

    // Non-finite logits.

    [Fact]
    public void NonFiniteWeight_EndsTheGenerationNamingTheTensor()
    {
        var weights = TinyModelFactory.CreateWeights(TestModels.Spec());
        weights["model.layers.1.mlp.down_proj.weight"][5] = float.NaN;
        WriteModel(weights);
        Refused<NonFiniteLogitsException>("non-finite logits", "model.layers.1.mlp.down_proj.weight", "element 5");
    }

    [Fact]
    public void OverflowFromFiniteWeights_EndsTheGenerationNamingTheConfig()
    {
        var weights = TinyModelFactory.CreateWeights(TestModels.Spec());
        Array.Fill(weights["lm_head.weight"], 3e38f);
        WriteModel(weights);
        Refused<NonFiniteLogitsException>("non-finite logits", "every weight is finite", "config.json");
        // Sampling reads the logits on the host: the same error, and several sequences at once too.
        using var model = LanguageModel.Load(Model, new ModelLoadOptions { Backend = _backend });
        Assert.Throws<NonFiniteLogitsException>(() => model.Generate("x", new GenerationOptions { Temperature = 0.8f, Seed = 1 }));
        Assert.Throws<NonFiniteLogitsException>(() => model.GenerateBatch(["x", "y"], new GenerationOptions { MaxNewTokens = 2 }));
    }

    [Fact]
    public void NonFiniteLogits_InTheCli_IsExitCode2WithOneMessage()
    {
        var weights = TinyModelFactory.CreateWeights(TestModels.Spec());
        weights["model.norm.weight"][0] = float.PositiveInfinity;
        WriteModel(weights);
        var result = CliRunner.Run("generate", "--model", Model, "--max-tokens", "2", "--backend", "cpu", "hi");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("model.norm.weight", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
    }
}
