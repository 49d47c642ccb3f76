using Kangaroo.Backends;
using Kangaroo.Model;

namespace Kangaroo.Diagnostics;

/// <summary>
/// What an op benchmark runs ops against: a model's workspace, its KV cache filled to <see cref="Context"/> with
/// non-zero keys and values, and non-zero activations (zeros can run faster than real data). Shared by
/// <see cref="OpBenchmark"/> and the BenchmarkDotNet microbenchmarks (bench/Kangaroo.Bench).
/// </summary>
internal sealed class OpFixture : IDisposable
{
    public OpFixture(LlamaModel model, int maxRows, int context)
    {
        Model = model;
        Context = context;
        var b = model.Backend;
        var c = model.Config;
        Cache = model.CreateCache(context + maxRows);
        Workspace = model.CreateWorkspace(Math.Max(maxRows, 2));
        var random = new Random(3);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        Input = b.Allocate(maxRows * Math.Max(c.IntermediateSize, c.HiddenSize));
        b.Upload(Values(Input.Length), Input);
        var ws = Workspace;
        b.Upload(Values(maxRows * c.HiddenSize), ws.Hidden);
        b.Upload(Values(maxRows * c.HiddenSize), ws.Delta);
        b.Upload(Values(maxRows * c.IntermediateSize), ws.Gate);
        b.Upload(Values(maxRows * c.IntermediateSize), ws.Up);
        b.Upload(Values(maxRows * c.QueryWidth), ws.Queries);
        b.Upload(Values(maxRows * c.KvWidth), ws.Keys);
        b.Upload(Values(maxRows * c.KvWidth), ws.Values);
        for (int start = 0; start < context; start += ws.MaxRows)
        {
            int rows = Math.Min(ws.MaxRows, context - start);
            model.StageRange(ws, Cache, 0, start, rows);
            b.StoreKv(Cache.Storage, 0, ws.Keys, ws.Values, ws.Positions, rows);
        }
        SetRows(maxRows);
        b.Synchronize();
    }

    public LlamaModel Model { get; }
    public int Context { get; }
    public KvCache Cache { get; }
    public ForwardWorkspace Workspace { get; }

    /// <summary>Random rows wide enough for any matmul of the model (hidden or intermediate columns).</summary>
    public ComputeBuffer Input { get; }

    /// <summary>Places <paramref name="rows"/> new tokens right after the filled context.</summary>
    public void SetRows(int rows) => Model.StageRange(Workspace, Cache, 0, Context, rows);

    public void Dispose()
    {
        Input.Dispose();
        Workspace.Dispose();
        Cache.Dispose();
    }
}
