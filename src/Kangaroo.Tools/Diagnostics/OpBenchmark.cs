using System.Diagnostics;
using Kangaroo.Backends;
using Kangaroo.Model;

namespace Kangaroo.Diagnostics;

/// <summary>One op at one shape: median time per call and the bytes it must move (each input read once, each output written once).</summary>
public sealed record OpTiming(string Op, string Shape, double Microseconds, long Bytes)
{
    public double GigabytesPerSecond => Bytes / (Microseconds * 1e3);
}

/// <summary>
/// Times each backend op at a model's shapes. Where the backend records passes (CUDA graphs), a batch of calls is
/// recorded once and replayed, so launch overhead stays out of the per-op figure; elsewhere the batch runs directly.
/// Inputs are the model's real weights and non-zero activations (zeros can run faster than real data).
/// </summary>
public static class OpBenchmark
{
    public static IReadOnlyList<OpTiming> Run(LlamaModel model, int context, IReadOnlyList<int> rowCounts, int callsPerBatch = 20, int batches = 7)
    {
        var b = model.Backend;
        var c = model.Config;
        var results = new List<OpTiming>();
        using var fixture = new OpFixture(model, rowCounts.Max(), context);
        var (cache, ws, x) = (fixture.Cache, fixture.Workspace, fixture.Input);
        var layer = model.Layers[0];

        foreach (int rows in rowCounts)
        {
            fixture.SetRows(rows);
            void MatMul(string name, WeightTensor w, ComputeBuffer output) => results.Add(Time(b, $"matmul {name}", $"{rows}×{w.Columns} · {w.Rows}×{w.Columns}ᵀ",
                w.ByteLength + 4L * rows * (w.Columns + w.Rows), callsPerBatch, batches, () => b.MatMul(x, w, output, rows)));
            // The ops a decode step runs, fused as the model calls them.
            var (q, k, v) = (layer.QueryProjection, layer.KeyProjection, layer.ValueProjection);
            results.Add(Time(b, "matmul q/k/v (one launch)", $"{rows}×{q.Columns} · {q.Rows + k.Rows + v.Rows}×{q.Columns}ᵀ",
                q.ByteLength + k.ByteLength + v.ByteLength + 4L * rows * (q.Columns + q.Rows + k.Rows + v.Rows), callsPerBatch, batches,
                () => b.MatMulShared(x, rows, q, ws.Queries, k, ws.Keys, v, ws.Values)));
            MatMul("o_proj", layer.OutputProjection, ws.Delta);
            var (gate, up) = (layer.GateProjection, layer.UpProjection);
            results.Add(Time(b, "matmul gate/up + silu", $"{rows}×{gate.Columns} · 2×{gate.Rows}×{gate.Columns}ᵀ",
                gate.ByteLength + up.ByteLength + 4L * rows * (gate.Columns + gate.Rows), callsPerBatch, batches,
                () => b.MatMulSiluMul(x, gate, up, ws.Gate, ws.Up, rows)));
            MatMul("down_proj", layer.DownProjection, ws.Delta);
            MatMul("lm_head", model.LmHead, ws.Logits);
            results.Add(Time(b, "attention", $"{rows} rows × {c.NumHeads} heads, context {context}",
                2L * context * c.KvWidth * cache.Storage.ElementBytes + 8L * rows * c.QueryWidth, callsPerBatch, batches,
                () => b.TreeAttention(ws.Queries, cache.Storage, 0, ws.Positions, null, 0, ws.AttentionOutput, rows, c.NumHeads, c.NumKvHeads, c.HeadDim)));
            results.Add(Time(b, "add_rmsnorm", $"{rows}×{c.HiddenSize}", 4L * rows * c.HiddenSize * 4, callsPerBatch, batches,
                () => b.AddRmsNorm(ws.Hidden, ws.Delta, layer.PostAttentionNorm, 1e-5f, ws.Normed, rows, c.HiddenSize)));
            results.Add(Time(b, "rope + store_kv", $"{rows}×({c.NumHeads}+{c.NumKvHeads})×{c.HeadDim}",
                8L * rows * (c.QueryWidth + c.KvWidth) + 4L * rows * c.KvWidth + 2L * rows * c.KvWidth * cache.Storage.ElementBytes,
                callsPerBatch, batches,
                () => b.RopeAndStoreKv(ws.Queries, ws.Keys, ws.Values, ws.Positions, model.InverseFrequencies, cache.Storage, 0, ws.Positions,
                    rows, c.NumHeads, c.NumKvHeads, c.HeadDim)));
        }
        return results;
    }

    private static OpTiming Time(IComputeBackend backend, string op, string shape, long bytes, int calls, int batches, Action call)
    {
        Action batch = () => { for (int i = 0; i < calls; i++) call(); };
        batch();   // warm-up; sizes scratch before any recording
        backend.Synchronize();
        ICapturedWork? recorded = backend is IGraphCapture capture ? capture.Capture(batch) : null;
        try
        {
            var times = new double[batches];
            for (int i = 0; i < batches; i++)
            {
                long start = Stopwatch.GetTimestamp();
                if (recorded is not null) recorded.Replay(); else batch();
                backend.Synchronize();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds / calls;
            }
            Array.Sort(times);
            return new OpTiming(op, shape, times[batches / 2], bytes);
        }
        finally
        {
            recorded?.Dispose();
        }
    }
}
