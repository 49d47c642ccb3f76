using System.Buffers.Binary;
using System.Text;
using Kangaroo.Tests.TinyModels;
using Xunit;
using static Kangaroo.Tests.CommandLine.CliRunner;

namespace Kangaroo.Tests.CommandLine;

/// <summary>
/// Bad input, through <c>generate</c> and <c>inspect</c>: exit code 2, one message naming the file / tensor / option and
/// what was expected, no stack trace unless --verbose.
/// </summary>
public sealed class CliBadInputTests : IDisposable
{
    private const string Prompt = "Hello world";
    private readonly TestDirectory _dir = new("cli-bad");
    private readonly string _model;

    public CliBadInputTests()
    {
        _model = _dir.Combine("model");
        TestModels.Write(_model, TestModels.Spec(layers: 2));
    }

    public void Dispose() => _dir.Dispose();

    private string Weights => Path.Combine(_model, "model.safetensors");

    private CliResult Generate(params string[] args) => Run(["generate", "--model", _model, .. args]);

    private CliResult Inspect(params string[] args) => Run(["inspect", "--model", _model, .. args]);

    /// <summary>The same bad model through both commands.</summary>
    private void AssertBothRefuse(params string[] keyPhrases)
    {
        AssertBadInput(Generate("--max-tokens", "2", Prompt), keyPhrases);
        AssertBadInput(Inspect(), keyPhrases);
    }

    // ---- The model directory and config.json ----

    [Fact]
    public void MissingModelDirectory()
    {
        string missing = _dir.Combine("no-such-model");
        AssertBadInput(Run("generate", "--model", missing, Prompt), missing, "model directory not found");
        AssertBadInput(Run("inspect", "--model", missing), missing, "model directory not found");
    }

    [Fact]
    public void DirectoryWithoutConfig()
    {
        File.Delete(Path.Combine(_model, "config.json"));
        AssertBothRefuse("config.json", "not found");
    }

    [Fact]
    public void ConfigNotJson()
    {
        File.WriteAllText(Path.Combine(_model, "config.json"), "{ \"hidden_size\": 32, oops");
        AssertBothRefuse("config.json", "not valid JSON");
    }

    [Fact]
    public void ConfigMissingHiddenSize()
    {
        EditConfig(_model, c => c.Remove("hidden_size"));
        AssertBothRefuse("config.json", "\"hidden_size\"", "missing");
    }

    [Fact]
    public void HeadsNotDividingHiddenSize()
    {
        EditConfig(_model, c => { c["num_attention_heads"] = 5; c["num_key_value_heads"] = 5; });
        AssertBothRefuse("config.json", "num_attention_heads (5) does not divide hidden_size (32)");
    }

    [Fact]
    public void KvHeadsNotDividingHeads()
    {
        EditConfig(_model, c => c["num_key_value_heads"] = 3);
        AssertBothRefuse("config.json", "num_key_value_heads (3) does not divide num_attention_heads (4)");
    }

    // ---- Weights ----

    [Fact]
    public void MissingSafeTensors()
    {
        File.Delete(Weights);
        AssertBothRefuse(_model, "safetensors");
    }

    [Fact]
    public void TruncatedSafeTensors()
    {
        byte[] bytes = File.ReadAllBytes(Weights);
        File.WriteAllBytes(Weights, bytes[..(bytes.Length / 2)]);
        AssertBothRefuse("model.safetensors", "truncated");
    }

    [Fact]
    public void HeaderLengthPastTheEndOfTheFile()
    {
        byte[] bytes = File.ReadAllBytes(Weights);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)bytes.Length);
        File.WriteAllBytes(Weights, bytes);
        AssertBothRefuse("model.safetensors", "header length", "past the end of the file");
    }

    [Fact]
    public void HeaderNotJson()
    {
        byte[] bytes = File.ReadAllBytes(Weights);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        bytes.AsSpan(8, headerLength).Fill((byte)'#');
        File.WriteAllBytes(Weights, bytes);
        AssertBothRefuse("model.safetensors", "JSON");
    }

    [Fact]
    public void UnknownDTypeInTheHeader()
    {
        ReplaceInHeader("\"F32\"", "\"Q99\"");
        AssertBothRefuse("model.safetensors", "Q99");
    }

    [Fact]
    public void TensorOfTheWrongShape()
    {
        // The tensors hold intermediate 64; the config now says 48: the field is named, with the tensor that shows it.
        EditConfig(_model, c => c["intermediate_size"] = 48);
        AssertBothRefuse("config.json", "intermediate_size is 48", "model.layers.0.mlp.gate_proj.weight", "[64, 32]");
    }

    [Fact]
    public void MissingTensor()
    {
        // Two layers on disk, three in the config: the config's field is the cause.
        EditConfig(_model, c => c["num_hidden_layers"] = 3);
        AssertBothRefuse("config.json", "num_hidden_layers is 3", "2 decoder layers");
    }

    [Fact]
    public void MissingLmHeadWhenNotTied()
    {
        string tied = _dir.Combine("tied");
        TestModels.Write(tied, TestModels.Spec(layers: 2) with { Tied = true });
        EditConfig(tied, c => c["tie_word_embeddings"] = false);
        AssertBadInput(Run("generate", "--model", tied, Prompt), "lm_head.weight");
        AssertBadInput(Run("inspect", "--model", tied), "lm_head.weight");
    }

    // ---- Tokenizer and prompt ----

    [Fact]
    public void MissingTokenizerModel()
    {
        File.Delete(Path.Combine(_model, "tokenizer.model"));
        AssertBadInput(Generate(Prompt), "tokenizer.model");
    }

    [Fact]
    public void PromptLongerThanTheContext()
    {
        AssertBadInput(Generate("--context", "8", "one two three four five six seven eight nine ten"),
            "the prompt has", "tokens but the context holds 8");
    }

    [Fact]
    public void EmptyPrompt()
    {
        AssertBadInput(RunWithInput("", "generate", "--model", _model), "prompt is empty");
    }

    // ---- Options ----

    [Theory]
    [InlineData("--temperature", "-1", "temperature")]
    [InlineData("--temperature", "abc", "--temperature")]
    [InlineData("--temperature", "NaN", "temperature")]
    [InlineData("--top-p", "0", "top-p")]
    [InlineData("--top-p", "1.5", "top-p")]
    [InlineData("--top-k", "-1", "top-k")]
    [InlineData("--max-tokens", "0", "max new tokens")]
    [InlineData("--max-tokens", "many", "--max-tokens")]
    [InlineData("--seed", "-3", "--seed")]
    [InlineData("--context", "1", "--context")]
    [InlineData("--threads", "0", "--threads")]
    [InlineData("--backend", "gpu", "unknown backend 'gpu'")]
    public void InvalidOptionValue(string option, string value, string keyPhrase)
    {
        AssertBadInput(Generate(option, value, Prompt), keyPhrase, value);
    }

    [Fact]
    public void OptionWithoutItsValue()
    {
        AssertBadInput(Run("generate", "--model"), "option '--model' needs a value");
    }

    [Fact]
    public void UnknownOption()
    {
        AssertBadInput(Generate("--frobnicate", Prompt), "unknown option '--frobnicate'");
        AssertBadInput(Inspect("--frobnicate"), "unknown option '--frobnicate'");
        AssertBadInput(Generate("-x", Prompt), "unknown option '-x'");
    }

    [Fact]
    public void UnknownCommand()
    {
        AssertBadInput(Run("genrate", "--model", _model), "unknown command 'genrate'", "generate, serve, inspect");
    }

    [Fact]
    public void TwoPrompts()
    {
        AssertBadInput(Generate("one", "two"), "expected one PROMPT argument, got 2");
        AssertBadInput(Inspect("extra"), "unexpected argument 'extra'");
    }

    // ---- Kangaroo ----

    [Fact]
    public void KangarooWithoutAnyAdapter()
    {
        AssertBadInput(Generate("--kangaroo", Prompt), "--kangaroo needs an adapter", "kangaroo-adapter");
    }

    [Theory]
    [InlineData("--adapter")]
    [InlineData("--exit-layer")]
    [InlineData("--draft-steps")]
    [InlineData("--threshold")]
    public void KangarooOptionsWithoutKangaroo(string option)
    {
        AssertBadInput(Generate(option, "1", Prompt), "need --kangaroo");
    }

    [Fact]
    public void TreeOptionsNeedTheirFlagsAndValidValues()
    {
        AssertBadInput(Generate("--tree", Prompt), "need --kangaroo");
        AssertBadInput(Generate("--kangaroo", "--tree-budget", "8", Prompt), "need --tree");
        AssertBadInput(Generate("--kangaroo", "--tree", "--tree-budget", "0", Prompt), "tree budget must be in [1, 256], got 0");
        AssertBadInput(Generate("--kangaroo", "--tree", "--tree-threshold", "1.5", Prompt), "tree threshold must be in [0, 1]");
        AssertBadInput(Generate("--kangaroo", "--tree", "--tree-top-k", "0", Prompt), "tree top-K must be at least 1");
    }

    [Theory]
    [InlineData("--threshold", "2", "threshold must be in [0, 1], got 2")]
    [InlineData("--threshold", "-0.5", "threshold must be in [0, 1]")]
    [InlineData("--exit-layer", "99", "exit layer must be in [1, 3] for a model of 4 layers, got 99")]
    [InlineData("--exit-layer", "0", "--exit-layer must be at least 1, got 0")]
    [InlineData("--draft-steps", "0", "draft steps must be at least 1")]
    public void InvalidKangarooSetting(string option, string value, string keyPhrase)
    {
        string model = _dir.Combine("with-adapter");
        TestModels.WriteWithAdapter(model);
        AssertBadInput(Run("generate", "--model", model, "--kangaroo", option, value, Prompt), keyPhrase);
    }

    [Fact]
    public void AdapterDirectoryNotFound()
    {
        string missing = _dir.Combine("no-adapter");
        AssertBadInput(Generate("--kangaroo", "--adapter", missing, Prompt), missing, "adapter directory not found");
    }

    [Fact]
    public void AdapterOfAnotherHiddenSize()
    {
        var other = TestModels.Spec() with { Hidden = 48 };
        string adapter = TinyAdapterFactory.Write(other, _dir.Combine("adapter48"), TinyAdapterFactory.RandomWeights(other, 3));
        AssertBadInput(Generate("--kangaroo", "--adapter", adapter, Prompt),
            Path.Combine(adapter, "config.json"), "adapter hidden_size 48 does not match the base model's 32");
    }

    [Fact]
    public void AdapterWithoutWeights()
    {
        string adapter = TinyAdapterFactory.Write(TestModels.Spec(), _dir.Combine("adapter"), TinyAdapterFactory.RandomWeights(TestModels.Spec(), 3));
        File.Delete(Path.Combine(adapter, "model.safetensors"));
        AssertBadInput(Generate("--kangaroo", "--adapter", adapter, Prompt), "no adapter weights", "pytorch_model.bin");
    }

    // ---- --verbose ----

    [Fact]
    public void VerboseAddsTheStackTrace()
    {
        EditConfig(_model, c => c["intermediate_size"] = 48);
        var quiet = AssertBadInput(Generate(Prompt), "model.layers.0.mlp.gate_proj.weight");
        var verbose = Generate("--verbose", Prompt);
        Assert.Equal(2, verbose.ExitCode);
        Assert.Contains(quiet.StderrLines[0], verbose.Stderr);   // --verbose may first say which backend it picked
        Assert.Contains("   at ", verbose.Stderr);

        var inspect = Inspect("--verbose");
        Assert.Equal(2, inspect.ExitCode);
        Assert.Contains("   at ", inspect.Stderr);
    }

    // ---- More files that can be wrong ----

    [Theory]
    [InlineData("[1, 2]", "JSON object")]
    [InlineData("null", "JSON object")]
    [InlineData("", "is empty")]
    public void ConfigNotAnObject(string text, string keyPhrase)
    {
        File.WriteAllText(Path.Combine(_model, "config.json"), text);
        AssertBothRefuse("config.json", keyPhrase);
    }

    [Fact]
    public void ConfigFieldOfTheWrongType()
    {
        EditConfig(_model, c => c["hidden_size"] = "32");
        AssertBothRefuse("config.json", "\"hidden_size\"", "integer");
    }

    [Fact]
    public void EmptySafeTensors()
    {
        File.WriteAllBytes(Weights, []);
        AssertBothRefuse("model.safetensors", "is empty");
    }

    [Fact]
    public void ModelPathIsAFile()
    {
        AssertBadInput(Run("generate", "--model", Weights, Prompt), Weights, "is a file; --model expects the model directory");
        AssertBadInput(Run("inspect", "--model", Weights), Weights, "is a file; --model expects the model directory");
    }

    [Fact]
    public void CorruptTokenizerModel()
    {
        File.WriteAllBytes(Path.Combine(_model, "tokenizer.model"), Encoding.UTF8.GetBytes("this is not a protobuf at all"));
        AssertBadInput(Generate(Prompt), "tokenizer.model");
    }

    [Fact]
    public void TokenizerConfigNotJson()
    {
        File.WriteAllText(Path.Combine(_model, "tokenizer_config.json"), "{ nope");
        AssertBadInput(Generate(Prompt), "tokenizer_config.json");
    }

    [Fact]
    public void GenerationConfigNotJson()
    {
        File.WriteAllText(Path.Combine(_model, "generation_config.json"), "{ nope");
        AssertBadInput(Generate(Prompt), "generation_config.json");
    }

    [Fact]
    public void TokenizerLargerThanTheVocabulary()
    {
        EditConfig(_model, c => c["vocab_size"] = 1000);
        AssertBadInput(Generate(Prompt), "1500", "vocab_size");
    }

    [Fact]
    public void AdapterWithoutConfig()
    {
        string adapter = TinyAdapterFactory.Write(TestModels.Spec(), _dir.Combine("adapter"), TinyAdapterFactory.RandomWeights(TestModels.Spec(), 3));
        File.Delete(Path.Combine(adapter, "config.json"));
        AssertBadInput(Generate("--kangaroo", "--adapter", adapter, Prompt), Path.Combine(adapter, "config.json"));
    }

    [Fact]
    public void AdapterWithCorruptPyTorchCheckpoint()
    {
        string adapter = TinyAdapterFactory.Write(TestModels.Spec(), _dir.Combine("adapter"), TinyAdapterFactory.RandomWeights(TestModels.Spec(), 3));
        File.Delete(Path.Combine(adapter, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(adapter, "pytorch_model.bin"), Encoding.UTF8.GetBytes("PK not really a zip file"));
        AssertBadInput(Generate("--kangaroo", "--adapter", adapter, Prompt), "pytorch_model.bin");
    }

    [Theory]
    [InlineData("--threads", "100000")]
    [InlineData("--top-k", "100000")]
    [InlineData("--seed", "18446744073709551615")]
    [InlineData("--context", "512")]
    public void ExtremeButValidValuesWork(string option, string value)
    {
        var r = AssertSuccess(Generate(option, value, "--max-tokens", "3", "--ignore-eos", Prompt));
        Assert.Contains(", new tokens: 3, ", r.Stderr);
    }

    [Fact]
    public void HugeMaxTokensStopsAtTheFullContext()
    {
        var r = AssertSuccess(Generate("--max-tokens", "2147483647", "--ignore-eos", "--context", "40", Prompt));
        Assert.EndsWith("stop: context full", Assert.Single(r.StderrLines));
    }

    [Fact]
    public void ContextPastTheTrainedPositionsIsRefused()
    {
        // Was: an OutOfMemoryException reported as an internal error (exit 1).
        AssertBadInput(Generate("--context", "2147483647", Prompt), "--context 2147483647", "max_position_embeddings (512)");
        AssertBadInput(Generate("--context", "513", Prompt), "--context 513", "max_position_embeddings (512)");
    }

    [Theory]
    [InlineData("--temperature", "-1", "temperature")]
    [InlineData("--top-p", "0", "top-p")]
    [InlineData("--max-tokens", "0", "max new tokens")]
    [InlineData("--stop", "", "stop strings must not be empty")]
    public void InvalidOptionsFailBeforeTheModelLoads(string option, string value, string keyPhrase)
    {
        // The model directory does not exist: the option's message must come first, without waiting for a load.
        AssertBadInput(Run("generate", "--model", _dir.Combine("absent"), option, value, Prompt), keyPhrase);
        AssertBadInput(Run("generate", "--model", _dir.Combine("absent"), "--kangaroo", "--threshold", "7", Prompt), "threshold must be in [0, 1], got 7");
    }

    private void ReplaceInHeader(string from, string to)
    {
        Assert.Equal(from.Length, to.Length);
        byte[] bytes = File.ReadAllBytes(Weights);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string header = Encoding.UTF8.GetString(bytes, 8, headerLength);
        int at = header.IndexOf(from, StringComparison.Ordinal);
        Assert.True(at >= 0, header);
        Encoding.UTF8.GetBytes(header[..at] + to + header[(at + from.Length)..]).CopyTo(bytes, 8);
        File.WriteAllBytes(Weights, bytes);
    }
}
