using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Kangaroo.Model;
using Kangaroo.Tests.TinyModels;
using Kangaroo.Weights;

namespace Kangaroo.Tests.Fuzz;

/// <summary>
/// A complete, loadable model directory that cases start from. Case directories symlink every file of it (so a case
/// costs a few links, and the Hugging Face cache layout — files that are links to blobs — is exercised by every case).
/// </summary>
internal sealed class FuzzBase
{
    private readonly ConcurrentDictionary<string, byte[]> _bytes = new(StringComparer.Ordinal);

    public required string Name { get; init; }
    public required string Directory { get; init; }
    /// <summary>Every file, relative to <see cref="Directory"/> ('/'-separated).</summary>
    public required IReadOnlyList<string> Files { get; init; }
    /// <summary>Subdirectories (created for real in case directories, their files linked).</summary>
    public required IReadOnlyList<string> Directories { get; init; }
    public required LlamaConfig Config { get; init; }
    public required int TokenizerVocab { get; init; }
    /// <summary>The model's weight files (model.safetensors, or the shards).</summary>
    public required IReadOnlyList<string> WeightFiles { get; init; }
    /// <summary>model.safetensors.index.json when sharded.</summary>
    public string? Index { get; init; }
    /// <summary>The adapter's weights file (kangaroo-adapter/model.safetensors or pytorch_model.bin), when there is an adapter.</summary>
    public string? AdapterWeights { get; init; }
    public string? AdapterConfig => AdapterWeights is null ? null : $"{AdapterDirectory}/config.json";
    public const string AdapterDirectory = "kangaroo-adapter";
    /// <summary>Tensor names of the model's checkpoint and of the adapter's.</summary>
    public required IReadOnlySet<string> ModelTensors { get; init; }
    public required IReadOnlySet<string> AdapterTensors { get; init; }
    /// <summary>The adapter's tensors as F32 values with shapes (to rewrite them in other formats).</summary>
    public required IReadOnlyList<(string Name, int[] Shape, float[] Values)> AdapterValues { get; init; }

    public bool IsDemo => Name == "demo";
    public bool Sharded => Index is not null;
    public bool PyTorchAdapter => AdapterWeights?.EndsWith(".bin", StringComparison.Ordinal) == true;

    public string FullPath(string relative) => Path.Combine(Directory, relative);

    /// <summary>The bytes of a base file (cached: generation reads them often).</summary>
    public byte[] Read(string relative) => _bytes.GetOrAdd(relative, r => File.ReadAllBytes(FullPath(r)));

    public string ReadText(string relative) => System.Text.Encoding.UTF8.GetString(Read(relative));

    public override string ToString() => Name;
}

/// <summary>
/// The bases, written once per process into a temporary folder:
/// <list type="bullet">
/// <item><c>single</c>: a tiny random Llama (hidden 32, 4 layers, 4 heads / 2 KV heads, vocab 1500, F32) with the
/// "llama" fixture SentencePiece tokenizer, generation_config.json, and a safetensors adapter (exit layer 2) in kangaroo-adapter/.</item>
/// <item><c>sharded</c>: the same weights as two shards plus model.safetensors.index.json.</item>
/// <item><c>pytorch</c>: <c>single</c> with the adapter as config.json + pytorch_model.bin (zip + pickle, as torch.save writes it;
/// no exit_layer, as in the official release).</item>
/// <item><c>demo</c>: the repository's demo model (models/demo next to the test binary, 12 layers, F16, rope_parameters), used in place.</item>
/// </list>
/// </summary>
internal sealed class FuzzBases : IDisposable
{
    private static readonly Lazy<FuzzBases> s_instance = new(() => new FuzzBases(), LazyThreadSafetyMode.ExecutionAndPublication);
    private readonly TestDirectory _root = new("fuzz-bases");
    private readonly Dictionary<string, string> _hashes = new(StringComparer.Ordinal);

    public static FuzzBases Instance => s_instance.Value;

    public FuzzBase Single { get; }
    public FuzzBase Sharded { get; }
    public FuzzBase PyTorch { get; }
    public FuzzBase Demo { get; }
    public IReadOnlyList<FuzzBase> All => [Single, Sharded, PyTorch, Demo];

    public static readonly TinyModelSpec Spec = TestModels.Spec(layers: 4, seed: 31);
    public const int ExitLayer = 2;

    /// <summary>Seconds it took to write the bases (reported with the run).</summary>
    public double CreationSeconds { get; }

    private FuzzBases()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var weights = TinyAdapterFactory.NearIdentityDeepLayers(Spec, ExitLayer, 0.15f);
        var adapterWeights = TinyAdapterFactory.AgreeingWeights(Spec, weights, 32, 0.1);
        Single = WriteTiny("single", Spec, weights, adapterWeights, pytorch: false);
        Sharded = WriteTiny("sharded", Spec with { Shards = 2 }, weights, adapterWeights, pytorch: false);
        PyTorch = WriteTiny("pytorch", Spec, weights, adapterWeights, pytorch: true);
        Demo = Describe("demo", Path.Combine(AppContext.BaseDirectory, "models", "demo"));
        foreach (var b in All)
            foreach (string f in b.Files)
                _hashes[b.FullPath(f)] = Hash(b.FullPath(f));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => _root.Dispose();
        CreationSeconds = clock.Elapsed.TotalSeconds;
    }

    private FuzzBase WriteTiny(string name, TinyModelSpec spec, Dictionary<string, float[]> weights, Dictionary<string, float[]> adapterWeights, bool pytorch)
    {
        string dir = _root.CreateSubdirectory(name);
        TestModels.Write(dir, spec, weights: weights);
        File.WriteAllText(Path.Combine(dir, GenerationConfig.FileName),
            "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n  \"do_sample\": false,\n  \"max_new_tokens\": 64,\n  \"transformers_version\": \"4.44.0\"\n}\n");
        string adapter = Path.Combine(dir, FuzzBase.AdapterDirectory);
        TinyAdapterFactory.Write(spec with { Shards = 1 }, adapter, adapterWeights, pytorch ? null : ExitLayer);
        if (pytorch)
        {
            File.Delete(Path.Combine(adapter, "model.safetensors"));
            var tensors = AdapterShapes(spec).Select(t => (t.Name, t.Shape, adapterWeights[t.Name])).ToList();
            File.WriteAllBytes(Path.Combine(adapter, "pytorch_model.bin"), TorchCheckpoint.Write(TorchCheckpoint.FromF32(tensors)).Bytes);
        }
        return Describe(name, dir);
    }

    public static List<(string Name, int[] Shape)> AdapterShapes(TinyModelSpec spec) => TinyAdapterFactory.Shapes(spec);

    private static FuzzBase Describe(string name, string dir)
    {
        var files = new List<string>();
        var dirs = new List<string>();
        foreach (string entry in System.IO.Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string rel = Path.GetRelativePath(dir, entry).Replace('\\', '/');
            if (System.IO.Directory.Exists(entry)) dirs.Add(rel);
            else files.Add(rel);
        }
        var config = LlamaConfig.LoadFromDirectory(dir);
        string? index = files.Contains(WeightStore.IndexFileName) ? WeightStore.IndexFileName : null;
        var weightFiles = files.Where(f => !f.Contains('/') && f.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();
        var modelTensors = new HashSet<string>(StringComparer.Ordinal);
        foreach (string w in weightFiles)
        {
            using var file = SafeTensorsFile.Open(Path.Combine(dir, w));
            modelTensors.UnionWith(file.TensorNames);
        }
        string? adapterWeights = files.FirstOrDefault(f => f == $"{FuzzBase.AdapterDirectory}/model.safetensors")
                                 ?? files.FirstOrDefault(f => f == $"{FuzzBase.AdapterDirectory}/pytorch_model.bin");
        var adapterTensors = new HashSet<string>(StringComparer.Ordinal);
        var adapterValues = new List<(string, int[], float[])>();
        if (adapterWeights is not null)
        {
            if (adapterWeights.EndsWith(".bin", StringComparison.Ordinal))
            {
                using var checkpoint = PyTorchCheckpoint.Open(Path.Combine(dir, adapterWeights));
                foreach (string t in checkpoint.TensorNames)
                {
                    var view = checkpoint.Get(t);
                    adapterTensors.Add(t);
                    adapterValues.Add((t, view.Shape.ToArray(), view.ToFloat32Array()));
                }
            }
            else
            {
                using var file = SafeTensorsFile.Open(Path.Combine(dir, adapterWeights));
                foreach (string t in file.TensorNames)
                {
                    var view = file.Get(t);
                    adapterTensors.Add(t);
                    adapterValues.Add((t, view.Shape.ToArray(), view.ToFloat32Array()));
                }
            }
        }
        int vocab = Kangaroo.Tokenization.TextTokenizer.Load(dir).VocabularySize;
        return new FuzzBase
        {
            Name = name, Directory = dir, Files = files, Directories = dirs, Config = config, TokenizerVocab = vocab,
            WeightFiles = weightFiles, Index = index, AdapterWeights = adapterWeights, ModelTensors = modelTensors,
            AdapterTensors = adapterTensors, AdapterValues = adapterValues,
        };
    }

    public FuzzBase Get(string name) => All.First(b => b.Name == name);

    /// <summary>Base files that changed since they were written (a case wrote through a link): must be none.</summary>
    public IReadOnlyList<string> ChangedFiles() => _hashes.Where(kv => Hash(kv.Key) != kv.Value).Select(kv => kv.Key).ToList();

    private static string Hash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    public void Dispose() => _root.Dispose();

    /// <summary>Every file name a model directory may hold, for the "message names the file" rule.</summary>
    public static readonly string[] KnownFileNames =
    [
        "config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.model", "tokenizer.json", "model.safetensors",
        "model.safetensors.index.json", "pytorch_model.bin", "kangaroo-adapter", "special_tokens_map.json",
    ];

    /// <summary>Config field names of every base JSON file (for the "message names the field" rule).</summary>
    public IReadOnlySet<string> FieldNames => _fieldNames.Value;

    private readonly Lazy<IReadOnlySet<string>> _fieldNames = new(() =>
    {
        var names = new HashSet<string>(StringComparer.Ordinal)
        {
            "exit_layer", "rope_scaling", "rope_parameters", "rope_theta", "rope_type", "factor", "low_freq_factor", "high_freq_factor",
            "original_max_position_embeddings", "head_dim", "sliding_window", "weight_map", "bos_token", "eos_token", "add_bos_token",
            "add_eos_token", "hidden_act", "attention_bias", "mlp_bias", "tie_word_embeddings", "max_position_embeddings",
        };
        foreach (var b in Instance.All)
            foreach (string f in b.Files.Where(f => f.EndsWith(".json", StringComparison.Ordinal)))
                try
                {
                    using var doc = JsonDocument.Parse(b.Read(f));
                    Collect(doc.RootElement, names);
                }
                catch (JsonException) { }
        return names;

        static void Collect(JsonElement e, HashSet<string> names)
        {
            if (e.ValueKind != JsonValueKind.Object) return;
            foreach (var p in e.EnumerateObject())
            {
                // Tensor names of weight maps are not fields.
                if (!p.Name.Contains('.')) names.Add(p.Name);
                if (p.Name != "weight_map") Collect(p.Value, names);
            }
        }
    });
}
