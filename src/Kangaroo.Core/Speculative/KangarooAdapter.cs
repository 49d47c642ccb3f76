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

    private KangarooAdapter(LlamaModel baseModel, LlamaConfig config, int? exitLayer, IDisposable weightsOwner, WeightTensor[] tensors,
        WeightTensor inverseFrequencies, string directory)
    {
        _base = baseModel;
        Config = config;
        RecordedExitLayer = exitLayer;
        _weightsOwner = weightsOwner;
        _tensors = tensors;
        (_inputNorm, _query, _key, _value, _output, _finalNorm) = (tensors[0], tensors[1], tensors[2], tensors[3], tensors[4], tensors[5]);
        if (config.QueryKeyNorm) _headNorms = new LlamaModel.HeadNorms(tensors[6], tensors[7]);
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
        if (exitLayer is int l && (l < 1 || l >= b.NumLayers))
            throw new ModelFormatException(configPath, $"exit_layer {l} is outside [1, {b.NumLayers - 1}] for a base model of {b.NumLayers} layers");

        var (source, names, fileOf, owner) = OpenWeights(directory);
        var tensors = new List<WeightTensor>();
        try
        {
            CheckpointCheck.RefuseUnused(names, config.QueryKeyNorm ? HeadNormTensorNames : TensorNames, fileOf, configPath);
            var views = new List<TensorView>();
            WeightTensor Take(string name, params int[] shape)
            {
                var view = source(name, shape);
                views.Add(view);
                var tensor = baseModel.Backend.LoadWeight(view, shape.Length == 1 ? 1 : shape[0], shape[^1]);
                tensors.Add(tensor);
                return tensor;
            }
            Take("layers.0.input_layernorm.weight", config.HiddenSize);
            Take("layers.0.self_attn.q_proj.weight", config.QueryWidth, config.HiddenSize);
            Take("layers.0.self_attn.k_proj.weight", config.KvWidth, config.HiddenSize);
            Take("layers.0.self_attn.v_proj.weight", config.KvWidth, config.HiddenSize);
            Take("layers.0.self_attn.o_proj.weight", config.HiddenSize, config.QueryWidth);
            Take("norm.weight", config.HiddenSize);
            if (config.QueryKeyNorm)
            {
                Take("layers.0.self_attn.q_norm.weight", config.HeadDim);
                Take("layers.0.self_attn.k_norm.weight", config.HeadDim);
            }
            float[] frequencies = RotaryEmbedding.InverseFrequencies(config);
            var inverseFrequencies = baseModel.Backend.LoadWeight("adapter.rope.inv_freq", frequencies, 1, frequencies.Length);
            tensors.Add(inverseFrequencies);
            return new KangarooAdapter(baseModel, config, exitLayer, owner, tensors.Take(config.QueryKeyNorm ? 8 : 6).ToArray(), inverseFrequencies, directory)
            {
                _sourceViews = [.. views],
            };
        }
        catch
        {
            foreach (var t in tensors) t.Dispose();
            owner.Dispose();
            throw;
        }
    }

    /// <summary>The tensors an adapter checkpoint holds (the reference release's names).</summary>
    private static readonly IReadOnlySet<string> TensorNames = new HashSet<string>(StringComparer.Ordinal)
    {
        "layers.0.input_layernorm.weight", "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.k_proj.weight",
        "layers.0.self_attn.v_proj.weight", "layers.0.self_attn.o_proj.weight", "norm.weight",
    };

    /// <summary>An adapter of a base with query and key head norms (Qwen3) holds them too.</summary>
    private static readonly IReadOnlySet<string> HeadNormTensorNames = new HashSet<string>(TensorNames, StringComparer.Ordinal)
    {
        "layers.0.self_attn.q_norm.weight", "layers.0.self_attn.k_norm.weight",
    };

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
        _base.StoreAndAttend(ws, cache.Storage, 0, rows, c, _inverseFrequencies, _headNorms);
        if (logitsFrom == ForwardPass.NoLogits) return;

        b.MatMul(ws.AttentionOutput, _output, ws.Delta, rows);
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
