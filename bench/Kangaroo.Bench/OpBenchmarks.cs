using BenchmarkDotNet.Attributes;
using Kangaroo.Backends;
using Kangaroo.Diagnostics;
using Kangaroo.Model;

namespace Kangaroo.Bench;

/// <summary>
/// Every op a decode step runs, at a model's shapes, on each backend this machine has, for 1 row (decode) and 8 rows
/// (verification). GPU backends are timed on the device (<see cref="IDeviceTimer"/>: CUDA events around the op); the
/// columns put bytes moved and GB/s next to the backend's measured copy bandwidth (<see cref="Ceilings"/>).
/// </summary>
public class OpBenchmarks
{
    /// <summary>
    /// cpu always; cuda and ilgpu (on a GPU) where they are available. ILGPU's CPU simulator is left out: too slow to be a
    /// comparison. KANGAROO_BENCH_BACKENDS="cuda,cpu" narrows the list.
    /// </summary>
    public static IEnumerable<string> AvailableBackends()
    {
        var wanted = Selected("KANGAROO_BENCH_BACKENDS");
        return BackendSelector.Survey()
            .Where(c => c.IsAvailable && (c.Backend != "ilgpu" || !c.Device.StartsWith("Cpu", StringComparison.Ordinal)))
            .Select(c => c.Backend)
            .Distinct()
            .Where(b => wanted is null || wanted.Contains(b));
    }

    /// <summary>demo: the committed demo model; llama7b: one layer (and the head) of the Llama-2-7B shape, random F16 weights.
    /// KANGAROO_BENCH_SHAPES="llama7b" narrows the list.</summary>
    public static IEnumerable<string> Shapes()
    {
        var wanted = Selected("KANGAROO_BENCH_SHAPES");
        return new[] { "demo", "llama7b" }.Where(s => wanted is null || wanted.Contains(s));
    }

    /// <summary>Rows per call: 1 (decode) and the verification sizes 2 to 16. KANGAROO_BENCH_ROWS="1,8" narrows the list.</summary>
    public static IEnumerable<int> RowCounts()
    {
        var wanted = Selected("KANGAROO_BENCH_ROWS");
        return new[] { 1, 2, 4, 8, 16 }.Where(r => wanted is null || wanted.Contains(r.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    private static HashSet<string>? Selected(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } list
            ? [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)]
            : null;

    [ParamsSource(nameof(AvailableBackends))]
    public string Backend { get; set; } = "cpu";

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "demo";

    [ParamsSource(nameof(RowCounts))]
    public int Rows { get; set; } = 1;

    public const int Context = 1024;

    private ModelFixture? _fixture;
    private ModelFixture F => _fixture ?? throw new InvalidOperationException("setup did not run");

    [GlobalSetup]
    public void Setup()
    {
        _fixture = new ModelFixture(Backend, Shape, Rows, Context);
        Ceilings.Measure(Backend, F.Backend);
    }

    [GlobalCleanup]
    public void Cleanup() => _fixture?.Dispose();

    [Benchmark(Description = "matmul q/k/v")]
    public void MatMulQkv()
    {
        var (l, ws) = (F.Layer, F.Workspace);
        Measure(nameof(MatMulQkv), l.QueryProjection.ByteLength + l.KeyProjection.ByteLength + l.ValueProjection.ByteLength,
            () => F.Backend.MatMulShared(F.Input, Rows, l.QueryProjection, ws.Queries, l.KeyProjection, ws.Keys, l.ValueProjection, ws.Values));
    }

    [Benchmark(Description = "matmul o_proj")]
    public void MatMulOutput() =>
        Measure(nameof(MatMulOutput), F.Layer.OutputProjection.ByteLength, () => F.Backend.MatMul(F.Input, F.Layer.OutputProjection, F.Workspace.Delta, Rows));

    [Benchmark(Description = "matmul gate/up + silu")]
    public void MatMulGateUpSilu() =>
        Measure(nameof(MatMulGateUpSilu), F.Layer.GateProjection.ByteLength + F.Layer.UpProjection.ByteLength,
            () => F.Backend.MatMulSiluMul(F.Input, F.Layer.GateProjection, F.Layer.UpProjection, F.Workspace.Gate, F.Workspace.Up, Rows));

    [Benchmark(Description = "matmul down_proj")]
    public void MatMulDown() =>
        Measure(nameof(MatMulDown), F.Layer.DownProjection.ByteLength, () => F.Backend.MatMul(F.Input, F.Layer.DownProjection, F.Workspace.Delta, Rows));

    [Benchmark(Description = "matmul lm_head")]
    public void MatMulLmHead() =>
        Measure(nameof(MatMulLmHead), F.Model.LmHead.ByteLength, () => F.Backend.MatMul(F.Input, F.Model.LmHead, F.Workspace.Logits, Rows));

    [Benchmark(Description = "attention")]
    public void Attention()
    {
        var c = F.Model.Config;
        Measure(nameof(Attention), 2L * Context * c.KvWidth * F.Cache.Storage.ElementBytes,
            () => F.Backend.TreeAttention(F.Workspace.Queries, F.Cache.Storage, 0, F.Workspace.Positions, null, 0, F.Workspace.AttentionOutput, Rows,
                c.NumHeads, c.NumKvHeads, c.HeadDim));
    }

    [Benchmark(Description = "add_rmsnorm")]
    public void AddRmsNorm()
    {
        int hidden = F.Model.Config.HiddenSize;
        Measure(nameof(AddRmsNorm), 4L * Rows * hidden * 4,
            () => F.Backend.AddRmsNorm(F.Workspace.Hidden, F.Workspace.Delta, F.Layer.PostAttentionNorm, 1e-5f, F.Workspace.Normed, Rows, hidden));
    }

    [Benchmark(Description = "rope + store_kv")]
    public void RopeAndStoreKv()
    {
        var c = F.Model.Config;
        var ws = F.Workspace;
        Measure(nameof(RopeAndStoreKv), 8L * Rows * (c.QueryWidth + c.KvWidth) + 4L * Rows * c.KvWidth + 2L * Rows * c.KvWidth * F.Cache.Storage.ElementBytes,
            () => F.Backend.RopeAndStoreKv(ws.Queries, ws.Keys, ws.Values, ws.Positions, F.Model.InverseFrequencies, F.Cache.Storage, 0, ws.Positions,
                Rows, c.NumHeads, c.NumKvHeads, c.HeadDim));
    }

    // The weights (or cache bytes) plus F32 activations in and out are what an op must move at least; activations are
    // small next to weights except for the elementwise ops, whose figures already count them.
    private void Measure(string method, long bytes, Action op)
    {
        var key = new CaseKey(method, Backend, Shape, Rows);
        DeviceTimings.SetBytes(key, bytes);
        if (F.Backend is IDeviceTimer timer)
            DeviceTimings.Add(key, timer.TimeOnDevice(op));
        else
        {
            op();
            F.Backend.Synchronize();
        }
    }
}

/// <summary>One benchmark case: which op, on which backend, at which shape and row count.</summary>
public readonly record struct CaseKey(string Method, string Backend, string Shape, int Rows);

/// <summary>A backend, a model and its first layer, and the op fixture (workspace, filled KV cache, random inputs).</summary>
internal sealed class ModelFixture : IDisposable
{
    private readonly string? _temporaryDirectory;

    public ModelFixture(string backend, string shape, int rows, int context)
    {
        Backend = BackendSelector.Create(backend).Backend;
        string directory;
        if (shape == "demo")
            directory = Path.Combine(AppContext.BaseDirectory, "models", "demo");
        else if (shape == "llama7b")
        {
            // One decoder layer and the 32000-token head at the Llama-2-7B shape: every op's shape, 0.9 GB to write.
            _temporaryDirectory = Directory.CreateTempSubdirectory("kangaroo-bench-").FullName;
            directory = _temporaryDirectory;
            RandomModelWriter.Write(directory, new LlamaConfig
            {
                HiddenSize = 4096, IntermediateSize = 11008, NumLayers = 1, NumHeads = 32, NumKvHeads = 32, HeadDim = 128, VocabSize = 32000,
                RmsNormEps = 1e-5, RopeTheta = 10000.0, MaxPositionEmbeddings = 4096, BosTokenId = 1, EosTokenIds = [2],
            }, new RandomModelOptions { Overwrite = true });
        }
        else throw new ArgumentOutOfRangeException(nameof(shape), shape, "demo or llama7b");

        Model = LlamaModel.Load(directory, Backend);
        Layer = Model.Layers[0];
        _ops = new OpFixture(Model, rows, context);
    }

    private readonly OpFixture _ops;

    public IComputeBackend Backend { get; }
    public LlamaModel Model { get; }
    public LlamaModel.LayerWeights Layer { get; }
    public KvCache Cache => _ops.Cache;
    public ForwardWorkspace Workspace => _ops.Workspace;

    /// <summary>Random rows as wide as any matmul's input (hidden or intermediate columns).</summary>
    public ComputeBuffer Input => _ops.Input;

    public void Dispose()
    {
        _ops.Dispose();
        Model.Dispose();
        Backend.Dispose();
        if (_temporaryDirectory is not null) Directory.Delete(_temporaryDirectory, recursive: true);
    }
}
