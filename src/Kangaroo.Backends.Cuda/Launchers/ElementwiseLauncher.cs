using Kangaroo.Cuda;

using static Kangaroo.Backends.BackendArguments;
using static Kangaroo.Backends.Cuda.Launchers.KernelParameter;

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

    // table, token ids, output, rows, width.
    private static readonly KernelSignature EmbedKernel = new(KernelSignature.Names("embed", KernelSignature.WeightTypes),
        Pointer, Pointer, Pointer, Int, Int);
    // x, positions, inverse frequencies, rows, heads, head dimension.
    private static readonly KernelSignature RopeKernel = new(["rope"], Pointer, Pointer, Pointer, Int, Int, Int);
    // key cache, value cache, keys, values, slots, rows, KV width, layer offset.
    private static readonly KernelSignature StoreKvKernel = new(KernelSignature.Names("store_kv", KernelSignature.CacheTypes),
        Pointer, Pointer, Pointer, Pointer, Pointer, Int, Int, Long);
    // queries, keys, values, positions, inverse frequencies, key cache, value cache, slots, rows, heads, KV heads,
    // head dimension, layer offset.
    private static readonly KernelSignature RopeStoreKvKernel = new(KernelSignature.Names("rope_store_kv", KernelSignature.CacheTypes),
        Pointer, Pointer, Pointer, Pointer, Pointer, Pointer, Pointer, Pointer, Int, Int, Int, Int, Long);
    // source, source rows, destination, destination rows, rows, width.
    private static readonly KernelSignature CopyRowsKernel = new(["copy_rows"], Pointer, Pointer, Pointer, Pointer, Int, Int);
    // key cache, value cache, moves, count, KV width, layer stride.
    private static readonly KernelSignature MoveKvSlotsKernel = new(KernelSignature.Names("kv_move_slots", KernelSignature.CacheTypes),
        Pointer, Pointer, Pointer, Int, Int, Long);
    // values, bias, elements, width.
    private static readonly KernelSignature AddBiasKernel = new(KernelSignature.Names("add_bias", KernelSignature.WeightTypes),
        Pointer, Pointer, Long, Int);
    // gate, up, output, count.
    private static readonly KernelSignature SiluMulKernel = new(["silu_mul"], Pointer, Pointer, Pointer, Int);
    // data, 16-byte vectors, partial sums.
    private static readonly KernelSignature ReadSumKernel = new(["read_sum"], Pointer, Long, Pointer);

    public static IReadOnlyList<KernelSignature> Signatures =>
        [EmbedKernel, RopeKernel, StoreKvKernel, RopeStoreKvKernel, CopyRowsKernel, MoveKvSlotsKernel, AddBiasKernel, SiluMulKernel, ReadSumKernel];

    public void Embed(CudaWeight t, CudaIndices ids, CudaActivations o, int rows)
    {
        CheckEmbed(t, ids.Host, o.Length, rows);
        if (rows == 0) return;
        var args = new LaunchArguments(EmbedKernel);
        args.Pointer(t.Memory); args.Pointer(ids.Memory); args.Pointer(o.Memory); args.Int(rows); args.Int(t.Columns);
        queue.Launch(queue.Kernels.ForType("embed", t.DType), Blocks((long)rows * t.Columns), Threads, args);
    }

    public void Rope(CudaActivations v, CudaIndices p, CudaWeight f, int rows, int heads, int headDim)
    {
        CheckRope(v.Length, p.Host, f, rows, heads, headDim);
        CheckFloat32(f, "inverseFrequencies");
        if (rows == 0) return;
        var args = new LaunchArguments(RopeKernel);
        args.Pointer(v.Memory); args.Pointer(p.Memory); args.Pointer(f.Memory); args.Int(rows); args.Int(heads); args.Int(headDim);
        queue.Launch(queue.Kernels["rope"], Blocks((long)rows * heads * (headDim / 2)), Threads, args);
    }

    public void StoreKv(CudaKvCache kv, int layer, CudaActivations k, CudaActivations v, CudaIndices s, int rows)
    {
        CheckStoreKv(kv, layer, k.Length, v.Length, s.Host, rows);
        if (rows == 0) return;
        var args = new LaunchArguments(StoreKvKernel);
        args.Pointer(kv.Keys); args.Pointer(kv.Values); args.Pointer(k.Memory); args.Pointer(v.Memory); args.Pointer(s.Memory);
        args.Int(rows); args.Int(kv.KvWidth); args.Long(kv.LayerOffset(layer));
        queue.Launch(queue.Kernels.ForType("store_kv", kv.DType), Blocks((long)rows * kv.KvWidth), Threads, args);
    }

    public void RopeAndStoreKv(CudaActivations q, CudaActivations k, CudaActivations v, CudaIndices p, CudaWeight f,
        CudaKvCache kv, int layer, CudaIndices s, int rows, int heads, int kvHeads, int headDim)
    {
        CheckRope(q.Length, p.Host, f, rows, heads, headDim, "queries");
        CheckFloat32(f, "inverseFrequencies");
        CheckAttentionShape(kv, heads, kvHeads, headDim);
        CheckStoreKv(kv, layer, k.Length, v.Length, s.Host, rows);
        if (rows == 0) return;
        var args = new LaunchArguments(RopeStoreKvKernel);
        args.Pointer(q.Memory); args.Pointer(k.Memory); args.Pointer(v.Memory); args.Pointer(p.Memory); args.Pointer(f.Memory);
        args.Pointer(kv.Keys); args.Pointer(kv.Values); args.Pointer(s.Memory);
        args.Int(rows); args.Int(heads); args.Int(kvHeads); args.Int(headDim); args.Long(kv.LayerOffset(layer));
        long items = (long)rows * ((heads + kvHeads) * (headDim / 2) + kv.KvWidth);
        queue.Launch(queue.Kernels.ForType("rope_store_kv", kv.DType), Blocks(items), Threads, args);
    }

    public void CopyRows(CudaActivations from, CudaIndices read, CudaActivations to, CudaIndices write, int rows, int width)
    {
        CheckRowCopies(read.Host, write.Host, rows, width, from.Length, to.Length, ReferenceEquals(from, to));
        if (rows == 0) return;
        var args = new LaunchArguments(CopyRowsKernel);
        args.Pointer(from.Memory); args.Pointer(read.Memory); args.Pointer(to.Memory); args.Pointer(write.Memory); args.Int(rows); args.Int(width);
        queue.Launch(queue.Kernels["copy_rows"], Blocks((long)rows * width), Threads, args);
    }

    /// <summary>Runs <paramref name="count"/> moves already uploaded to <paramref name="moves"/>: sources, then destinations.</summary>
    public void MoveKvSlots(CudaKvCache kv, CudaIndices moves, int count)
    {
        var args = new LaunchArguments(MoveKvSlotsKernel);
        args.Pointer(kv.Keys); args.Pointer(kv.Values); args.Pointer(moves.Memory); args.Int(count); args.Int(kv.KvWidth);
        args.Long(kv.LayerOffset(1));
        queue.Launch(queue.Kernels.ForType("kv_move_slots", kv.DType), (uint)kv.Layers, Threads, args);
    }

    public void AddBias(CudaActivations x, CudaWeight bias, int rows, int width)
    {
        CheckAddBias(x.Length, bias, rows, width);
        long count = (long)rows * width;
        if (count == 0) return;
        var args = new LaunchArguments(AddBiasKernel);
        args.Pointer(x.Memory); args.Pointer(bias.Memory); args.Long(count); args.Int(width);
        queue.Launch(queue.Kernels.ForType("add_bias", bias.DType), Blocks(count), Threads, args);
    }

    public void SiluMul(CudaActivations g, CudaActivations u, CudaActivations o, int count)
    {
        CheckSiluMul(g.Length, u.Length, o.Length, count);
        if (count == 0) return;
        var args = new LaunchArguments(SiluMulKernel);
        args.Pointer(g.Memory); args.Pointer(u.Memory); args.Pointer(o.Memory); args.Int(count);
        queue.Launch(queue.Kernels["silu_mul"], Blocks(count), Threads, args);
    }

    /// <summary>Sums <paramref name="vectors"/> 16-byte vectors of <paramref name="source"/>, a partial per warp.</summary>
    public void ReadSum(DeviceBuffer source, long vectors, DeviceBuffer partials, uint blocks)
    {
        var args = new LaunchArguments(ReadSumKernel);
        args.Pointer(source); args.Long(vectors); args.Pointer(partials);
        queue.Launch(queue.Kernels["read_sum"], blocks, ReadSumThreads, args);
    }

    private static uint Blocks(long elements) => (uint)((elements + Threads - 1) / Threads);
}
