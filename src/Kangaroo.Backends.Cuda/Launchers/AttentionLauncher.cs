using System.Globalization;
using System.Numerics.Tensors;
using Kangaroo.Cuda;

using static Kangaroo.Backends.BackendArguments;
using static Kangaroo.Backends.Cuda.Launchers.KernelParameter;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// attention.cu: attention over the KV cache split along the keys, attention_partial per (row group, head, key block) and
/// attention_combine per (row, head).
/// </summary>
internal sealed class AttentionLauncher(KernelQueue queue, KernelDefines defines)
{
    /// <summary>Threads per block of both kernels.</summary>
    public static readonly KernelDefine Threads = new("ATTENTION_THREADS", 128);
    /// <summary>
    /// Keys per block of attention_partial. At context 512–1024 a block's serial key loop is what a decode step waits for:
    /// 32 beat 64 at both the 7B shape and the bench model's, and 16 won only on the small model (bench/RESULTS.md has the
    /// sweep).
    /// </summary>
    public static readonly KernelDefine BlockKeys = new("ATTENTION_BLOCK_KEYS", 32);
    /// <summary>The widest head: the "_wide" kernels hold head elements in two steps of 4 per lane.</summary>
    public static readonly KernelDefine MaxHeadDim = new("ATTENTION_MAX_HEAD_DIM", 256);
    /// <summary>Query rows per block of the batch kernels; the "_r1", "_r2" and "_r4" variants take up to 1, 2 and 4.</summary>
    public static readonly KernelDefine RowsPerBlock = new("ATTENTION_ROWS", 8);
    /// <summary>Key blocks attention_combine merges at most (its shared weights array): with the block keys, the longest context.</summary>
    public static readonly KernelDefine MaxCombinedBlocks = new("ATTENTION_MAX_BLOCKS_COMBINED", 1024);

    /// <summary>
    /// The kernels for this many rows per block and more copy a key block's keys and values into shared memory at once
    /// (cp.async) before using them: one trip to memory per block rather than one per key pair. Bits are unchanged, so the
    /// choice is free to follow measurement (bench/RESULTS.md).
    /// </summary>
    public static readonly KernelDefine StageMinRows = new("ATTENTION_STAGE_MIN_ROWS", 2);
    /// <summary>The most shared memory a block stages its keys and values in: wider heads and caches load as before.</summary>
    public static readonly KernelDefine StageMaxBytes = new("ATTENTION_STAGE_MAX_BYTES", 32768);

    public static IReadOnlyList<KernelDefine> Defines => [Threads, BlockKeys, MaxHeadDim, RowsPerBlock, MaxCombinedBlocks, StageMinRows, StageMaxBytes];

    // queries, keys, values, positions, recent slots, window, sequences, capacity, partials, rows, heads, KV heads,
    // head dimension, KV width, layer offset, scale, key blocks.
    private static readonly KernelSignature PartialKernel = new(
        KernelSignature.Names("attention_partial", KernelSignature.CacheTypes, ["", "_wide"], ["", "_r1", "_r2", "_r4"]),
        Pointer, Pointer, Pointer, Pointer, Pointer, Int, Pointer, Int, Pointer, Int, Int, Int, Int, Int, Long, Float, Int);
    // partials, positions, output, heads, head dimension, key blocks.
    private static readonly KernelSignature CombineKernel = new(["attention_combine"], Pointer, Pointer, Pointer, Int, Int, Int);

    public static IReadOnlyList<KernelSignature> Signatures => [PartialKernel, CombineKernel];

    private readonly uint _threads = (uint)defines[Threads];
    private readonly int _blockKeys = defines[BlockKeys];
    private readonly int _maxHeadDim = defines[MaxHeadDim];
    private readonly int _rowsPerBlock = defines[RowsPerBlock];

    /// <summary>The longest context the kernels handle.</summary>
    public int MaxContext { get; } = defines[MaxCombinedBlocks] * defines[BlockKeys];

    private static int DistinctSequences(ReadOnlySpan<int> sequences)
    {
        int distinct = 0;
        for (int r = 0; r < sequences.Length; r++)
            if (sequences[..r].IndexOf(sequences[r]) < 0) distinct++;
        return distinct;
    }

    // The kernels always take a window of recent slots and the rows' sequences; a plain attention passes neither.
    public void AttentionOverSlots(CudaActivations q, CudaKvCache kv, int layer, CudaIndices p, CudaIndices? recent,
        int window, CudaActivations o, int rows, int heads, int kvHeads, int headDim, CudaIndices? rowSequences)
    {
        CheckAttention(kv, layer, q.Length, p.Host, o.Length, rows, heads, kvHeads, headDim);
        if (headDim > _maxHeadDim) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"head dimensions up to {_maxHeadDim} are supported");
        if (ReferenceEquals(q, o)) throw new ArgumentException("attention cannot write its output over its queries", "output");
        if (recent is not null) CheckRecentSlots(p.Host, recent.Host, rows, window, kv.Slots, "recentSlots");
        if (rowSequences is not null) CheckSequences(rowSequences.Host, rows, kv, "sequences");
        if (rows == 0) return;

        // Partials are sized for the whole cache, so a recorded launch (which must cover any later position) never
        // outgrows them; plain launches only start the key blocks the longest row reaches.
        int capacityBlocks = (kv.Capacity - 1) / _blockKeys + 1;
        int maxBlocks;
        lock (queue.Gate)
        {
            maxBlocks = queue.Capturing ? capacityBlocks : TensorPrimitives.Max<int>(p.Host.AsSpan(0, rows)) / _blockKeys + 1;
            long partialBytes = (long)rows * heads * capacityBlocks * (headDim + 2) * sizeof(float);
            if (kv.Partials is null || kv.Partials.ByteLength < partialBytes)
            {
                if (queue.Capturing) throw new InvalidOperationException("attention scratch must be sized by a plain run before recording");
                // A pass recorded earlier holds the old buffer's address: freeing it would let that pass write into
                // whatever is allocated there next. It is kept instead, and growth doubles so that few are kept.
                if (kv.Partials is { } outgrown) kv.RetiredPartials.Add(outgrown);
                kv.Partials = queue.Allocate(Math.Max(partialBytes, 2 * (kv.Partials?.ByteLength ?? 0)), "attention partials");
            }
        }
        float scale = 1f / MathF.Sqrt(headDim);
        var partialArgs = new LaunchArguments(PartialKernel);
        partialArgs.Pointer(q.Memory); partialArgs.Pointer(kv.Keys); partialArgs.Pointer(kv.Values); partialArgs.Pointer(p.Memory);
        if (recent is null) partialArgs.NullPointer(); else partialArgs.Pointer(recent.Memory);
        partialArgs.Int(recent is null ? 0 : window);
        if (rowSequences is null) partialArgs.NullPointer(); else partialArgs.Pointer(rowSequences.Memory);
        partialArgs.Int(kv.Capacity);
        partialArgs.Pointer(kv.Partials!); partialArgs.Int(rows); partialArgs.Int(heads); partialArgs.Int(kvHeads); partialArgs.Int(headDim);
        partialArgs.Int(kv.KvWidth); partialArgs.Long(kv.LayerOffset(layer)); partialArgs.Float(scale); partialArgs.Int(maxBlocks);
        // A decode step takes the kernel for one row, short verifications those for 2 or 4: the same operations per row,
        // fewer registers and shorter loops than the 8-row kernel. Rows of different sequences share no keys, so a batch
        // of several sequences is sized by its rows per sequence (batched decoding: one, the one-row kernel) and the
        // kernel groups each sequence's rows itself. Its grid then has a group per row, since a recording is replayed with
        // whatever split of rows the later rounds bring; the groups it does not have exit at once.
        int sequences = rowSequences is null ? 1 : DistinctSequences(rowSequences.Host.AsSpan(0, rows));
        int rowsPerGroup = (rows + sequences - 1) / sequences;
        int rowsPerBlock = rowsPerGroup <= 1 ? 1 : rowsPerGroup <= 2 ? 2 : rowsPerGroup <= 4 ? 4 : _rowsPerBlock;
        int groups = rowSequences is not null && rowsPerBlock > 1 ? rows : (rows + rowsPerBlock - 1) / rowsPerBlock;
        string variant = rowsPerBlock == _rowsPerBlock ? "" : "_r" + rowsPerBlock.ToString(CultureInfo.InvariantCulture);
        queue.Launch(queue.Kernels.ForType("attention_partial", kv.DType, (headDim > 128 ? "_wide" : "") + variant),
            new Dim3((uint)(groups * heads), (uint)maxBlocks), _threads, partialArgs);

        var combineArgs = new LaunchArguments(CombineKernel);
        combineArgs.Pointer(kv.Partials!); combineArgs.Pointer(p.Memory); combineArgs.Pointer(o.Memory); combineArgs.Int(heads); combineArgs.Int(headDim); combineArgs.Int(maxBlocks);
        queue.Launch(queue.Kernels["attention_combine"], (uint)(rows * heads), _threads, combineArgs);
    }
}
