using Kangaroo.Cuda;
using Kangaroo.Weights;

using static Kangaroo.Backends.BackendArguments;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// elementwise.cu: one thread per output element (embedding gather, rotary embedding, KV-cache stores, SiLU·mul, row
/// copies), a block per layer for KV-slot moves, and the read-bandwidth probe.
/// </summary>
internal sealed class ElementwiseLauncher(KernelQueue queue)
{
    private const int Threads = 256;

    /// <summary>read_sum's block size: each of its warps writes one partial sum.</summary>
    public const int ReadSumThreads = 256;

    public void Embed(CudaWeight t, CudaIndices ids, CudaActivations o, int rows)
    {
        CudaArguments.CheckRows(rows, ids.Length, "tokens");
        CheckExtent(o.Length, rows, t.Columns, "output");
        for (int r = 0; r < rows; r++)
        {
            if ((uint)ids.Host[r] >= (uint)t.Rows)
                throw new ArgumentOutOfRangeException("tokens", ids.Host[r], $"token id outside the table's {t.Rows} rows");
        }
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(t.Memory); args.Add(ids.Memory); args.Add(o.Memory); args.Add(rows); args.Add(t.Columns);
        queue.Launch(queue.Kernels.ForType("embed", t.DType), Blocks((long)rows * t.Columns), Threads, args);
    }

    public void Rope(CudaActivations v, CudaIndices p, CudaWeight f, int rows, int heads, int headDim)
    {
        CheckRotary(f, headDim);
        CudaArguments.CheckRows(rows, p.Length, "positions");
        CheckExtent(v.Length, rows, (long)heads * headDim, "x");
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(v.Memory); args.Add(p.Memory); args.Add(f.Memory); args.Add(rows); args.Add(heads); args.Add(headDim);
        queue.Launch(queue.Kernels["rope"], Blocks((long)rows * heads * (headDim / 2)), Threads, args);
    }

    public void StoreKv(CudaKvCache kv, int layer, CudaActivations k, CudaActivations v, CudaIndices s, int rows)
    {
        CheckStore(kv, layer, k, v, s, rows);
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(kv.Keys); args.Add(kv.Values); args.Add(k.Memory); args.Add(v.Memory); args.Add(s.Memory);
        args.Add(rows); args.Add(kv.KvWidth); args.Add(kv.LayerOffset(layer));
        queue.Launch(queue.Kernels.ForType("store_kv", kv.DType), Blocks((long)rows * kv.KvWidth), Threads, args);
    }

    public void RopeAndStoreKv(CudaActivations q, CudaActivations k, CudaActivations v, CudaIndices p, CudaWeight f,
        CudaKvCache kv, int layer, CudaIndices s, int rows, int heads, int kvHeads, int headDim)
    {
        CheckRotary(f, headDim);
        CheckAttentionShape(kv, heads, kvHeads, headDim);
        CudaArguments.CheckRows(rows, p.Length, "positions");
        CheckExtent(q.Length, rows, (long)heads * headDim, "queries");
        CheckStore(kv, layer, k, v, s, rows);
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(q.Memory); args.Add(k.Memory); args.Add(v.Memory); args.Add(p.Memory); args.Add(f.Memory);
        args.Add(kv.Keys); args.Add(kv.Values); args.Add(s.Memory);
        args.Add(rows); args.Add(heads); args.Add(kvHeads); args.Add(headDim); args.Add(kv.LayerOffset(layer));
        long items = (long)rows * ((heads + kvHeads) * (headDim / 2) + kv.KvWidth);
        queue.Launch(queue.Kernels.ForType("rope_store_kv", kv.DType), Blocks(items), Threads, args);
    }

    public void CopyRows(CudaActivations from, CudaIndices read, CudaActivations to, CudaIndices write, int rows, int width)
    {
        CheckRowCopies(read.Host, write.Host, rows, width, from.Length, to.Length, ReferenceEquals(from, to));
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(from.Memory); args.Add(read.Memory); args.Add(to.Memory); args.Add(write.Memory); args.Add(rows); args.Add(width);
        queue.Launch(queue.Kernels["copy_rows"], Blocks((long)rows * width), Threads, args);
    }

    /// <summary>Runs <paramref name="count"/> moves already uploaded to <paramref name="moves"/>: sources, then destinations.</summary>
    public void MoveKvSlots(CudaKvCache kv, CudaIndices moves, int count)
    {
        var args = new KernelArguments();
        args.Add(kv.Keys); args.Add(kv.Values); args.Add(moves.Memory); args.Add(count); args.Add(kv.KvWidth);
        args.Add(kv.LayerOffset(1));
        queue.Launch(queue.Kernels.ForType("kv_move_slots", kv.DType), (uint)kv.Layers, Threads, args);
    }

    public void SiluMul(CudaActivations g, CudaActivations u, CudaActivations o, int count)
    {
        if (count < 0 || count > g.Length || count > u.Length || count > o.Length)
            throw new ArgumentOutOfRangeException(nameof(count), count, "larger than a buffer");
        if (count == 0) return;
        var args = new KernelArguments();
        args.Add(g.Memory); args.Add(u.Memory); args.Add(o.Memory); args.Add(count);
        queue.Launch(queue.Kernels["silu_mul"], Blocks(count), Threads, args);
    }

    /// <summary>Sums <paramref name="vectors"/> 16-byte vectors of <paramref name="source"/>, a partial per warp.</summary>
    public void ReadSum(DeviceBuffer source, long vectors, DeviceBuffer partials, uint blocks)
    {
        var args = new KernelArguments();
        args.Add(source); args.Add(vectors); args.Add(partials);
        queue.Launch(queue.Kernels["read_sum"], blocks, ReadSumThreads, args);
    }

    private static uint Blocks(long elements) => (uint)((elements + Threads - 1) / Threads);

    private static void CheckRotary(CudaWeight frequencies, int headDim)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"head dimension {headDim} must be even and positive", nameof(headDim));
        if (frequencies.DType != DType.F32 || (long)frequencies.Rows * frequencies.Columns < headDim / 2)
            throw new ArgumentException($"rotary frequencies must be {headDim / 2} F32 values", "inverseFrequencies");
    }

    private static void CheckStore(CudaKvCache kv, int layer, CudaActivations keys, CudaActivations values, CudaIndices slots, int rows)
    {
        CheckLayer(kv, layer);
        CudaArguments.CheckRows(rows, slots.Length, nameof(slots));
        CheckExtent(keys.Length, rows, kv.KvWidth, nameof(keys));
        CheckExtent(values.Length, rows, kv.KvWidth, nameof(values));
        CheckPositions(slots.Host, rows, kv.Slots, nameof(slots));
    }
}
