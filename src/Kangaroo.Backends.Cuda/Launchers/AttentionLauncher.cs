using System.Globalization;
using System.Numerics.Tensors;
using Kangaroo.Cuda;

using static Kangaroo.Backends.BackendArguments;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// attention.cu: attention over the KV cache split along the keys, attention_partial per (row group, head, key block) and
/// attention_combine per (row, head).
/// </summary>
internal sealed class AttentionLauncher(KernelQueue queue, int blockKeys)
{
    private const int Threads = 128;
    private const int MaxHeadDim = 256;
    private const int RowsPerBlock = 8;            // attention.cu: ATTENTION_ROWS
    private const int MaxCombinedBlocks = 1024;   // attention.cu: ATTENTION_MAX_BLOCKS_COMBINED

    /// <summary>The longest context the kernels handle: attention_combine merges at most <see cref="MaxCombinedBlocks"/> key blocks.</summary>
    public int MaxContext => MaxCombinedBlocks * blockKeys;

    // The kernels always take a window of recent slots and the rows' sequences; a plain attention passes neither.
    public void AttentionOverSlots(CudaActivations q, CudaKvCache kv, int layer, CudaIndices p, CudaIndices? recent,
        int window, CudaActivations o, int rows, int heads, int kvHeads, int headDim, CudaIndices? rowSequences)
    {
        CheckLayer(kv, layer);
        CheckAttentionShape(kv, heads, kvHeads, headDim);
        if (headDim > MaxHeadDim) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"head dimensions up to {MaxHeadDim} are supported");
        if (ReferenceEquals(q, o)) throw new ArgumentException("attention cannot write its output over its queries", "output");
        CudaArguments.CheckRows(rows, p.Length, "positions");
        CheckExtent(q.Length, rows, (long)heads * headDim, "queries");
        CheckExtent(o.Length, rows, (long)heads * headDim, "output");
        CheckPositions(p.Host, rows, kv.Capacity, "positions");
        if (recent is not null) CheckRecentSlots(p.Host, recent.Host, rows, window, kv.Slots, "recentSlots");
        if (rowSequences is not null) CheckSequences(rowSequences.Host, rows, kv, "sequences");
        if (rows == 0) return;

        // Partials are sized for the whole cache, so a recorded launch (which must cover any later position) never
        // outgrows them; plain launches only start the key blocks the longest row reaches.
        int capacityBlocks = (kv.Capacity - 1) / blockKeys + 1;
        int maxBlocks;
        lock (queue.Gate)
        {
            maxBlocks = queue.Capturing ? capacityBlocks : TensorPrimitives.Max<int>(p.Host.AsSpan(0, rows)) / blockKeys + 1;
            long partialBytes = (long)rows * heads * capacityBlocks * (headDim + 2) * sizeof(float);
            if (kv.Partials is null || kv.Partials.ByteLength < partialBytes)
            {
                if (queue.Capturing) throw new InvalidOperationException("attention scratch must be sized by a plain run before recording");
                kv.Partials?.Dispose();
                kv.Partials = queue.Allocate(partialBytes, "attention partials");
            }
        }
        float scale = 1f / MathF.Sqrt(headDim);
        var partialArgs = new KernelArguments();
        partialArgs.Add(q.Memory); partialArgs.Add(kv.Keys); partialArgs.Add(kv.Values); partialArgs.Add(p.Memory);
        if (recent is null) partialArgs.Add(0UL); else partialArgs.Add(recent.Memory);
        partialArgs.Add(recent is null ? 0 : window);
        if (rowSequences is null) partialArgs.Add(0UL); else partialArgs.Add(rowSequences.Memory);
        partialArgs.Add(kv.Capacity);
        partialArgs.Add(kv.Partials!); partialArgs.Add(rows); partialArgs.Add(heads); partialArgs.Add(kvHeads); partialArgs.Add(headDim);
        partialArgs.Add(kv.KvWidth); partialArgs.Add(kv.LayerOffset(layer)); partialArgs.Add(scale); partialArgs.Add(maxBlocks);
        // A decode step takes the kernel for one row, short verifications those for 2 or 4: the same operations per row,
        // fewer registers and shorter loops than the 8-row kernel.
        int rowsPerBlock = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : RowsPerBlock;
        // Rows of different sequences share no keys: grouping them only serializes their loads in one block. A batch of
        // several sequences takes the one-row kernel (same bits, more blocks), the faster choice for batched decoding
        // (bench/RESULTS.md has the measurement).
        if (rowSequences is not null) rowsPerBlock = 1;
        string variant = rowsPerBlock == RowsPerBlock ? "" : "_r" + rowsPerBlock.ToString(CultureInfo.InvariantCulture);
        queue.Launch(queue.Kernels.ForType("attention_partial", kv.DType, (headDim > 128 ? "_wide" : "") + variant),
            new Dim3((uint)((rows + rowsPerBlock - 1) / rowsPerBlock * heads), (uint)maxBlocks), Threads, partialArgs);

        var combineArgs = new KernelArguments();
        combineArgs.Add(kv.Partials!); combineArgs.Add(p.Memory); combineArgs.Add(o.Memory); combineArgs.Add(heads); combineArgs.Add(headDim); combineArgs.Add(maxBlocks);
        queue.Launch(queue.Kernels["attention_combine"], (uint)(rows * heads), Threads, combineArgs);
    }
}
