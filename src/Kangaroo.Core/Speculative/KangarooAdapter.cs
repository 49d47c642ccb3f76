using System.Text.Json;
using Kangaroo.Backends;
using Kangaroo.Model;
using Kangaroo.Weights;

namespace Kangaroo.Speculative;

/// <summary>
/// Kangaroo's adapter: one decoder layer with attention only (input RMSNorm → multi-head attention with RoPE →
/// residual add, no MLP) and a final RMSNorm, reading the hidden states that leave base layer ℓ. Its output goes
/// through the base model's own LM head. It has its own one-layer KV cache.
/// <para>
/// On disk: <c>config.json</c> (a LlamaConfig with num_hidden_layers = 1, plus an optional <c>"exit_layer"</c>) and
/// the reference checkpoint's tensors <c>layers.0.input_layernorm.weight</c>, <c>layers.0.self_attn.{q,k,v,o}_proj.weight</c>,
/// <c>norm.weight</c> in <c>model.safetensors</c> or, as in the official release, <c>pytorch_model.bin</c>.
/// </para>
/// </summary>
public sealed class KangarooAdapter : IDisposable
{
    /// <summary>The subfolder of a model directory that holds its adapter: <c>kangaroo-adapter/</c>.</summary>
    public const string DefaultSubdirectory = "kangaroo-adapter";

    private readonly LlamaModel _base;
    private readonly IDisposable _weightsOwner;
    private readonly WeightTensor[] _tensors;
    private readonly WeightTensor _inputNorm, _query, _key, _value, _output, _finalNorm, _inverseFrequencies;
    private readonly LlamaModel.HeadNorms? _headNorms;
    private readonly LlamaModel.ProjectionBiases _biases;

    private KangarooAdapter(LlamaModel baseModel, LlamaConfig config, int? exitLayer, IDisposable weightsOwner,
        IReadOnlyDictionary<string, WeightTensor> tensors, WeightTensor inverseFrequencies, string directory)
    {
        _base = baseModel;
        Config = config;
        RecordedExitLayer = exitLayer;
        _weightsOwner = weightsOwner;
        _tensors = [.. tensors.Values];
        WeightTensor? Optional(string name) => tensors.GetValueOrDefault(name);
        (_inputNorm, _query, _key, _value, _output, _finalNorm) = (tensors[InputNormName], tensors[Attention + "q_proj.weight"],
            tensors[Attention + "k_proj.weight"], tensors[Attention + "v_proj.weight"], tensors[Attention + "o_proj.weight"], tensors[FinalNormName]);
        if (config.QueryKeyNorm) _headNorms = new LlamaModel.HeadNorms(tensors[Attention + "q_norm.weight"], tensors[Attention + "k_norm.weight"]);
        _biases = new LlamaModel.ProjectionBiases(Optional(Attention + "q_proj.bias"), Optional(Attention + "k_proj.bias"),
            Optional(Attention + "v_proj.bias"), Optional(Attention + "o_proj.bias"), null, null, null);
        _inverseFrequencies = inverseFrequencies;
        Directory = directory;
    }

    public LlamaConfig Config { get; }
    public string Directory { get; }

    private TensorView[] _sourceViews = [];

    /// <summary>As <see cref="LlamaModel.FindNonFiniteWeight"/>, for the adapter's own tensors.</summary>
    public string? FindNonFiniteWeight() => LlamaModel.FindNonFinite(_sourceViews);

    /// <summary>The exit layer ℓ the adapter was trained for, when its config records it.</summary>
    public int? RecordedExitLayer { get; }

    /// <summary>Parameters of the adapter itself (the LM head is the base model's).</summary>
    public long ParameterCount => _tensors.Sum(t => (long)t.Rows * t.Columns);

    /// <summary>The adapter a model directory carries in <see cref="DefaultSubdirectory"/>, or null.</summary>
    public static string? BundledDirectory(string modelDirectory)
    {
        string bundled = Path.Combine(modelDirectory, DefaultSubdirectory);
        return System.IO.Directory.Exists(bundled) ? bundled : null;
    }

    /// <summary>Loads an adapter directory for <paramref name="baseModel"/>; every mismatch is a clear error.</summary>
    public static KangarooAdapter Load(string directory, LlamaModel baseModel)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new ModelFormatException(directory, "adapter directory not found");
        string configPath = Path.Combine(directory, LlamaConfig.FileName);
        LlamaConfig config;
        int? exitLayer;
        using (var document = ModelFiles.ReadJsonObject(configPath, ModelFiles.MaxConfigBytes, "an adapter's config.json"))
        {
            config = LlamaConfig.Parse(document.RootElement, configPath);
            exitLayer = ReadExitLayer(document.RootElement, configPath);
        }
        var b = baseModel.Config;
        if (config.NumLayers != 1)
            throw new ModelFormatException(configPath, $"num_hidden_layers is {config.NumLayers}; a Kangaroo adapter is one attention layer (1)");
        if (config.HiddenSize != b.HiddenSize)
            throw new ModelFormatException(configPath, $"adapter hidden_size {config.HiddenSize} does not match the base model's {b.HiddenSize}");
        if (config.VocabSize != b.VocabSize)
            throw new ModelFormatException(configPath, $"adapter vocab_size {config.VocabSize} does not match the base model's {b.VocabSize}");
        if (config.QueryKeyNorm != b.QueryKeyNorm)
            throw new ModelFormatException(configPath, $"adapter model_type \"{config.ModelType}\" {(config.QueryKeyNorm ? "normalizes" : "does not normalize")} " +
                $"query and key heads, but the base model (\"{b.ModelType}\") {(b.QueryKeyNorm ? "does" : "does not")}: an adapter follows its base model's architecture");
        if (config.QkvBias != b.QkvBias || config.OutputBias != b.OutputBias || config.MlpBias != b.MlpBias)
            throw new ModelFormatException(configPath, $"adapter model_type \"{config.ModelType}\" has {BiasText(config)}, but the base model (\"{b.ModelType}\") " +
                $"has {BiasText(b)}: an adapter follows its base model's architecture (its config is the base's with num_hidden_layers 1)");
        if (exitLayer is int l && (l < 1 || l >= b.NumLayers))
            throw new ModelFormatException(configPath, $"exit_layer {l} is outside [1, {b.NumLayers - 1}] for a base model of {b.NumLayers} layers");

        var (source, names, fileOf, owner) = OpenWeights(directory);
        var tensors = new Dictionary<string, WeightTensor>(StringComparer.Ordinal);
        WeightTensor? inverseFrequencies = null;
        try
        {
            var plan = ExpectedTensors(config);
            CheckpointCheck.RefuseUnused(names, plan.Select(t => t.Name).ToHashSet(StringComparer.Ordinal), fileOf, configPath);
            var views = new List<TensorView>();
            foreach (var (name, shape) in plan)
            {
                var view = source(name, shape);
                views.Add(view);
                tensors[name] = baseModel.Backend.LoadWeight(view, shape.Length == 1 ? 1 : shape[0], shape[^1]);
            }
            float[] frequencies = RotaryEmbedding.InverseFrequencies(config);
            inverseFrequencies = baseModel.Backend.LoadWeight("adapter.rope.inv_freq", frequencies, 1, frequencies.Length);
            return new KangarooAdapter(baseModel, config, exitLayer, owner, tensors, inverseFrequencies, directory)
            {
                _sourceViews = [.. views],
            };
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            inverseFrequencies?.Dispose();
            owner.Dispose();
            throw;
        }
    }

    private const string Attention = "layers.0.self_attn.";
    private const string InputNormName = "layers.0.input_layernorm.weight";
    private const string FinalNormName = "norm.weight";

    /// <summary>
    /// The tensors an adapter checkpoint holds (the reference release's names), and those its base's architecture adds:
    /// head norms (Qwen3) and attention biases (Qwen2, attention_bias).
    /// </summary>
    public static IReadOnlyList<(string Name, int[] Shape)> ExpectedTensors(LlamaConfig c)
    {
        var list = new List<(string, int[])>
        {
            (InputNormName, [c.HiddenSize]),
            (Attention + "q_proj.weight", [c.QueryWidth, c.HiddenSize]),
            (Attention + "k_proj.weight", [c.KvWidth, c.HiddenSize]),
            (Attention + "v_proj.weight", [c.KvWidth, c.HiddenSize]),
            (Attention + "o_proj.weight", [c.HiddenSize, c.QueryWidth]),
            (FinalNormName, [c.HiddenSize]),
        };
        if (c.QueryKeyNorm)
        {
            list.Add((Attention + "q_norm.weight", [c.HeadDim]));
            list.Add((Attention + "k_norm.weight", [c.HeadDim]));
        }
        if (c.QkvBias)
        {
            list.Add((Attention + "q_proj.bias", [c.QueryWidth]));
            list.Add((Attention + "k_proj.bias", [c.KvWidth]));
            list.Add((Attention + "v_proj.bias", [c.KvWidth]));
        }
        if (c.OutputBias) list.Add((Attention + "o_proj.bias", [c.HiddenSize]));
        return list;
    }

    private static string BiasText(LlamaConfig c) =>
        (!c.QkvBias ? "no attention biases" : c.OutputBias ? "q/k/v and o_proj biases (attention_bias true)" : "q/k/v biases") +
        (c.MlpBias ? " and mlp_bias true" : "");

    /// <summary>model.safetensors (or a sharded index) if present, else pytorch_model.bin.</summary>
    private static (Func<string, int[], TensorView> Get, IReadOnlyCollection<string> Names, Func<string, string> FileOf, IDisposable Owner)
        OpenWeights(string directory)
    {
        bool hasSafeTensors = ModelFiles.Exists(Path.Combine(directory, WeightStore.SingleFileName))
                              || ModelFiles.Exists(Path.Combine(directory, WeightStore.IndexFileName));
        if (hasSafeTensors)
        {
            var store = WeightStore.OpenDirectory(directory);
            return (store.Get, store.TensorNames, name => store.Get(name).FilePath, store);
        }
        string bin = Path.Combine(directory, "pytorch_model.bin");
        if (ModelFiles.Exists(bin))
        {
            var checkpoint = PyTorchCheckpoint.Open(bin);
            return (checkpoint.Get, checkpoint.TensorNames, _ => checkpoint.Path, checkpoint);
        }
        throw new ModelFormatException(directory, "no adapter weights: expected model.safetensors or pytorch_model.bin");
    }

    private static int? ReadExitLayer(JsonElement root, string configPath)
    {
        if (!root.TryGetProperty("exit_layer", out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int layer))
            throw new ModelFormatException(configPath, $"field \"exit_layer\" must be an integer, got {v.GetRawText()}");
        return layer;
    }

    /// <summary>Scratch for up to <paramref name="maxRows"/> adapter rows (attention only: no MLP buffers).</summary>
    public ForwardWorkspace CreateWorkspace(int maxRows, int treeWindow = 0) =>
        new(_base.Backend, Config with { VocabSize = _base.Config.VocabSize }, maxRows, withFeedForward: false, treeWindow: treeWindow);

    /// <param name="sequences">Independent sequences sharing the storage (batched decoding).</param>
    public KvCache CreateCache(int capacity, int sequences = 1) => new(_base.Backend.AllocateKvCache(1, capacity, Config.KvWidth, sequences));

    /// <summary>
    /// Runs the adapter over the rows staged in <paramref name="ws"/> (<see cref="LlamaModel.Stage"/>) — layer-ℓ hidden
    /// states in <paramref name="ws"/>.Hidden, consumed — writing their keys and values into <paramref name="cache"/>.
    /// Rows [<paramref name="logitsFrom"/>, rows) then go through the final norm and the base LM head into rows
    /// [0, rows − logitsFrom) of <paramref name="ws"/>.Logits (<see cref="ForwardPass.NoLogits"/>: none). Recorded where
    /// the backend records, as the base model's passes are.
    /// </summary>
    public void Run(ForwardWorkspace ws, KvCache cache, int logitsFrom)
    {
        var pass = new ForwardPass(false, 0, 1, logitsFrom);
        if (_base.Backend is IGraphCapture capture && ws.UseRecordedPasses)
        {
            ws.Recorded.Run(capture, new RecordedPassKey(PassNetwork.Adapter, pass, ws.Staged, cache.Storage),
                (Adapter: this, Workspace: ws, Cache: cache, LogitsFrom: logitsFrom), static s => s.Adapter.Execute(s.Workspace, s.Cache, s.LogitsFrom));
            return;
        }
        Execute(ws, cache, logitsFrom);
    }

    private void Execute(ForwardWorkspace ws, KvCache cache, int logitsFrom)
    {
        var b = _base.Backend;
        var c = Config;
        int rows = ws.Staged.Rows;
        float eps = (float)c.RmsNormEps;
        b.RmsNorm(ws.Hidden, _inputNorm, eps, ws.Normed, rows, c.HiddenSize);
        b.MatMulShared(ws.Normed, rows, _query, ws.Queries, _key, ws.Keys, _value, ws.Values);
        _base.AddQkvBiases(ws, rows, c, _biases);
        _base.StoreAndAttend(ws, cache.Storage, 0, rows, c, _inverseFrequencies, _headNorms);
        if (logitsFrom == ForwardPass.NoLogits) return;

        b.MatMul(ws.AttentionOutput, _output, ws.Delta, rows);
        if (_biases.Output is { } outputBias) b.AddBias(ws.Delta, outputBias, rows, c.HiddenSize);
        b.AddRmsNorm(ws.Hidden, ws.Delta, _finalNorm, eps, ws.Normed, rows, c.HiddenSize);
        var input = ws.Normed;
        if (logitsFrom > 0)
        {
            b.Copy(ws.Normed, logitsFrom * c.HiddenSize, ws.Delta, 0, (rows - logitsFrom) * c.HiddenSize);
            input = ws.Delta;
        }
        b.MatMul(input, _base.LmHead, ws.Logits, rows - logitsFrom);
    }

    public void Dispose()
    {
        foreach (var t in _tensors) t.Dispose();
        _inverseFrequencies.Dispose();
        _weightsOwner.Dispose();
    }
}
