using Kangaroo.Weights;

namespace Kangaroo.Backends;

/// <summary>
/// The operations of a Llama forward pass, on one device. The model code in Kangaroo.Core (and the Kangaroo
/// scheduler above it) is written once against this interface; each backend (CPU, CUDA, ILGPU) implements it.
/// <para>
/// Layout: activations are F32, row-major <c>[rows, width]</c>, one row per token of the call. Weights stay in
/// their stored dtype (F32/F16/BF16) and every reduction accumulates in F32.
/// </para>
/// <para>
/// <b>Row invariance</b> (the basis of lossless speculative decoding): for every op, the bits of one row's
/// result must not depend on how many rows the call has or what the other rows hold. Attention visits keys in
/// a fixed order/blocking determined by absolute key position only.
/// </para>
/// <para>
/// Thread safety: a backend may be used by several sessions (threads) at once, each with its own buffers and
/// KV cache; weights are shared and read-only.
/// </para>
/// </summary>
public interface IComputeBackend : IDisposable
{
    /// <summary>Short backend name: "cpu", "cuda", "ilgpu".</summary>
    string Name { get; }

    /// <summary>Human-readable device description (CPU model and threads, GPU name and memory, ...).</summary>
    string DeviceName { get; }

    /// <summary>
    /// Makes a weight tensor available to the device as a <c>[rows, columns]</c> matrix (a vector is one row).
    /// The view's memory stays valid for the model's lifetime, so a host backend may use it without copying.
    /// </summary>
    WeightTensor LoadWeight(TensorView source, int rows, int columns);

    /// <summary>A weight computed by the engine itself (e.g. rotary inverse frequencies), as F32.</summary>
    WeightTensor LoadWeight(string name, ReadOnlySpan<float> values, int rows, int columns);

    /// <summary>An F32 activation buffer of <paramref name="length"/> elements (contents undefined).</summary>
    ComputeBuffer Allocate(int length);

    /// <summary>An int32 buffer (token ids, positions, cache slots) of <paramref name="length"/> elements.</summary>
    IndexBuffer AllocateIndices(int length);

    /// <summary>
    /// Key/value storage for <paramref name="layers"/> layers × <paramref name="sequences"/> × <paramref name="capacity"/>
    /// positions × <paramref name="kvWidth"/> values. Sequence s owns slots [s · capacity, (s + 1) · capacity) of every layer:
    /// several independent sequences share one storage so that one pass serves them all (<see cref="TreeAttention"/>).
    /// </summary>
    KvCacheStorage AllocateKvCache(int layers, int capacity, int kvWidth, int sequences = 1);

    void Upload(ReadOnlySpan<float> source, ComputeBuffer destination, int destinationOffset = 0);
    void Upload(ReadOnlySpan<int> source, IndexBuffer destination);
    void Download(ComputeBuffer source, int sourceOffset, Span<float> destination);

    /// <summary>destination[dOff .. dOff+count) = source[sOff .. sOff+count).</summary>
    void Copy(ComputeBuffer source, int sourceOffset, ComputeBuffer destination, int destinationOffset, int count);

    /// <summary>
    /// For i &lt; <paramref name="rows"/>: row destinationRows[i] of <paramref name="destination"/> = row sourceRows[i] of
    /// <paramref name="source"/>, rows of <paramref name="width"/> values — a gather/scatter in one op, where a scheduler
    /// moves the states of many sequences between buffers. With one buffer for both, no row may be both read and written.
    /// </summary>
    void CopyRows(ComputeBuffer source, IndexBuffer sourceRows, ComputeBuffer destination, IndexBuffer destinationRows, int rows, int width);

    /// <summary>output[r, :] = table[tokens[r], :] converted to F32.</summary>
    void Embed(WeightTensor table, IndexBuffer tokens, ComputeBuffer output, int rows);

    /// <summary>output[r, :] = input[r, :] / sqrt(mean(input[r, :]²) + eps) * weight; output may be input (in place).</summary>
    void RmsNorm(ComputeBuffer input, WeightTensor weight, float eps, ComputeBuffer output, int rows, int width);

    /// <summary>values[r, c] += bias[c] (the bias converted to F32): the projection biases of Qwen2 and of Llama with attention_bias / mlp_bias.</summary>
    void AddBias(ComputeBuffer values, WeightTensor bias, int rows, int width);

    /// <summary>Fused residual step: residual += delta; normed = RmsNorm(residual) (same bits as the unfused pair).</summary>
    void AddRmsNorm(ComputeBuffer residual, ComputeBuffer delta, WeightTensor weight, float eps, ComputeBuffer normed, int rows, int width);

    /// <summary>output[r, o] = Σ_i input[r, i] · weight[o, i] (x·Wᵀ, PyTorch Linear layout), F32 accumulation.</summary>
    void MatMul(ComputeBuffer input, WeightTensor weight, ComputeBuffer output, int rows);

    /// <summary>
    /// Rotary embedding in place on <c>[rows, heads × headDim]</c>, Hugging Face "rotate_half" convention:
    /// for pair i &lt; headDim/2, angle = positions[r] · inverseFrequencies[i], and elements i and i + headDim/2 rotate.
    /// </summary>
    void Rope(ComputeBuffer x, IndexBuffer positions, WeightTensor inverseFrequencies, int rows, int heads, int headDim);

    /// <summary>Writes row r of <paramref name="keys"/>/<paramref name="values"/> (<c>[rows, kvWidth]</c>) into cache slot slots[r] of <paramref name="layer"/> (slots [0, <see cref="KvCacheStorage.Slots"/>)).</summary>
    void StoreKv(KvCacheStorage cache, int layer, ComputeBuffer keys, ComputeBuffer values, IndexBuffer slots, int rows);

    /// <summary>
    /// The one attention entry point: causal attention with grouped KV heads. Query row r (at position positions[r])
    /// attends to the keys of positions [0, positions[r]] of <paramref name="layer"/>, scaled by 1/√headDim; query head h
    /// reads KV head h / (heads / kvHeads). <c>queries</c> and <c>output</c> are <c>[rows, heads × headDim]</c>.
    /// <para>
    /// Token trees: for query row r, the key j positions back (j &lt; <paramref name="window"/>; j = 0 is the row's own)
    /// is read from cache slot recentSlots[r · window + j]: the row's path through the tree, the row itself first. Keys
    /// further back — every key when the window is 0 (then <paramref name="recentSlots"/> may be null) — sit at their own
    /// position. A tree node thus sees exactly the keys of its path, in the same order and with the same bits as a plain
    /// decode of that path. Everything that varies per round lives in buffers, so a recorded pass replays for any tree of
    /// the same size.
    /// </para>
    /// <para>
    /// With <paramref name="sequences"/>, rows of several sequences share the call: row r belongs to sequence
    /// sequences[r], whose keys further back than the window sit at slot sequences[r] · Capacity + position (recent slots
    /// are absolute). A row's bits do not depend on the other rows or sequences.
    /// </para>
    /// <para>
    /// With <paramref name="slidingWindow"/> &gt; 0 (Mistral), row r attends only to the keys of positions
    /// (positions[r] − slidingWindow, positions[r]]: which keys by absolute position, so row invariance holds. Backends
    /// without <see cref="SupportsSlidingWindow"/> refuse it.
    /// </para>
    /// </summary>
    void TreeAttention(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, IndexBuffer? recentSlots,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, IndexBuffer? sequences = null, int slidingWindow = 0);

    /// <summary>Whether <see cref="TreeAttention"/> takes a sliding window; without it, a model's context is bounded by its window.</summary>
    bool SupportsSlidingWindow => false;

    /// <summary>
    /// For i = 0, 1, … in order, copies cache slot from[i] to slot to[i] (slots [0, <see cref="KvCacheStorage.Slots"/>)) in every layer, keys and values: packs a token
    /// tree's accepted path into consecutive positions. to must ascend and to[i] ≤ from[i], so no move reads a slot an
    /// earlier one wrote.
    /// </summary>
    void MoveKvSlots(KvCacheStorage cache, ReadOnlySpan<int> from, ReadOnlySpan<int> to);

    /// <summary>output[i] = silu(gate[i]) · up[i] for i &lt; count.</summary>
    void SiluMul(ComputeBuffer gate, ComputeBuffer up, ComputeBuffer output, int count);

    // ---- Fused steps. Each has the result of the plain ops it replaces, bit for bit, on the same backend; the defaults
    // here are those ops. A backend overrides them to save launches and passes over memory.

    /// <summary>
    /// Two or three matmuls of one input (q/k/v projections): each output exactly as <see cref="MatMul"/> computes it.
    /// </summary>
    void MatMulShared(ComputeBuffer input, int rows, WeightTensor first, ComputeBuffer firstOutput,
        WeightTensor second, ComputeBuffer secondOutput, WeightTensor? third = null, ComputeBuffer? thirdOutput = null)
    {
        if ((third is null) != (thirdOutput is null))
            throw new ArgumentException("a third weight needs a third output, and the other way round", nameof(thirdOutput));
        MatMul(input, first, firstOutput, rows);
        MatMul(input, second, secondOutput, rows);
        if (third is not null) MatMul(input, third, thirdOutput!, rows);
    }

    /// <summary>
    /// The MLP's first half: output = silu(input·gateᵀ) · (input·upᵀ), as <see cref="MatMul"/> twice then
    /// <see cref="SiluMul"/> compute it. <paramref name="upScratch"/> (<c>[rows, up.Rows]</c>) may go unused.
    /// </summary>
    void MatMulSiluMul(ComputeBuffer input, WeightTensor gate, WeightTensor up, ComputeBuffer output, ComputeBuffer upScratch, int rows)
    {
        MatMul(input, gate, output, rows);
        MatMul(input, up, upScratch, rows);
        SiluMul(output, upScratch, output, rows * gate.Rows);
    }

    /// <summary>
    /// <see cref="Rope"/> on <paramref name="queries"/> and <paramref name="keys"/>, then <see cref="StoreKv"/> of the
    /// rotated keys and the values into <paramref name="slots"/> of <paramref name="layer"/>.
    /// </summary>
    void RopeAndStoreKv(ComputeBuffer queries, ComputeBuffer keys, ComputeBuffer values, IndexBuffer positions, WeightTensor inverseFrequencies,
        KvCacheStorage cache, int layer, IndexBuffer slots, int rows, int heads, int kvHeads, int headDim)
    {
        Rope(queries, positions, inverseFrequencies, rows, heads, headDim);
        Rope(keys, positions, inverseFrequencies, rows, kvHeads, headDim);
        StoreKv(cache, layer, keys, values, slots, rows);
    }

    /// <summary>
    /// Per row of <c>logits [rows, vocab]</c>: the index of the largest value (lowest index on ties) and its softmax
    /// probability — the draft's confidence check copies back these few bytes, not the logits.
    /// </summary>
    void ArgmaxWithProbability(ComputeBuffer logits, int rows, int vocab, Span<int> tokens, Span<float> probabilities);

    /// <summary>
    /// Per row of <c>logits [rows, vocab]</c>: its <paramref name="k"/> largest logits, value descending and the lowest index
    /// first among equals, and their softmax probabilities, into <c>tokens[r · k ..]</c> and <c>probabilities[r · k ..]</c>
    /// (id −1 and probability 0 where a row has fewer than k finite logits) — a token tree's proposals, without copying
    /// the logits. The token ids are exact; probabilities may differ from <see cref="TopKReference"/> in the last bits.
    /// This default copies the logits to the host and runs the reference.
    /// </summary>
    void TopKWithProbabilities(ComputeBuffer logits, int rows, int vocab, int k, Span<int> tokens, Span<float> probabilities)
    {
        BackendArguments.CheckTopK(logits, rows, vocab, k, tokens, probabilities);
        float[] host = System.Buffers.ArrayPool<float>.Shared.Rent(rows * vocab);
        try
        {
            Download(logits, 0, host.AsSpan(0, rows * vocab));
            for (int r = 0; r < rows; r++)
                TopKReference.Select(host.AsSpan(r * vocab, vocab), tokens.Slice(r * k, k), probabilities.Slice(r * k, k));
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(host);
        }
    }

    /// <summary>Waits for queued work (a no-op on synchronous backends).</summary>
    void Synchronize();
}

/// <summary>F32 activations owned by a backend.</summary>
public abstract class ComputeBuffer : IDisposable
{
    protected ComputeBuffer(int length) => Length = length;
    public int Length { get; }
    public abstract void Dispose();
}

/// <summary>Int32 indices (token ids, positions, slots) owned by a backend.</summary>
public abstract class IndexBuffer : IDisposable
{
    protected IndexBuffer(int length) => Length = length;
    public int Length { get; }
    public abstract void Dispose();
}

/// <summary>A weight matrix <c>[Rows, Columns]</c> in its stored dtype, resident where the backend computes.</summary>
public abstract class WeightTensor : IDisposable
{
    protected WeightTensor(string name, DType dtype, int rows, int columns)
    {
        Name = name;
        DType = dtype;
        Rows = rows;
        Columns = columns;
    }

    public string Name { get; }
    public DType DType { get; }
    public int Rows { get; }
    public int Columns { get; }
    public long ByteLength => (long)Rows * Columns * DType.SizeInBytes();
    public abstract void Dispose();
}

/// <summary>Keys and values of every layer for a fixed number of positions of one or more sequences.</summary>
public abstract class KvCacheStorage : IDisposable
{
    protected KvCacheStorage(int layers, int capacity, int kvWidth, int sequences = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequences);
        Layers = layers;
        Capacity = capacity;
        KvWidth = kvWidth;
        Sequences = sequences;
        Slots = checked(capacity * sequences);
    }

    public int Layers { get; }
    /// <summary>Positions per sequence.</summary>
    public int Capacity { get; }
    public int KvWidth { get; }
    /// <summary>Sequences sharing the storage; sequence s owns slots [s · Capacity, (s + 1) · Capacity).</summary>
    public int Sequences { get; }
    /// <summary>Slots per layer: Sequences × Capacity.</summary>
    public int Slots { get; }

    /// <summary>Bytes per stored key or value element (4 for F32, 2 for F16).</summary>
    public virtual int ElementBytes => 4;

    public abstract void Dispose();
}

/// <summary>
/// A backend that can record a sequence of its ops once and replay it with one launch (CUDA graphs): launch overhead is
/// a large share of a decode step at batch 1. Recorded ops read their inputs (token ids, positions) from the same
/// buffers at replay, so the caller uploads fresh values and replays.
/// </summary>
public interface IGraphCapture
{
    /// <summary>
    /// Records what <paramref name="record"/> issues on this backend into a replayable unit. Inside, only device work is
    /// allowed (no uploads, downloads or synchronization); kernels must not depend on host-side values that change
    /// between replays (the backend sizes launch shapes for the worst case while recording).
    /// </summary>
    ICapturedWork Capture(Action record);
}

/// <summary>Recorded device work; <see cref="Replay"/> queues it again.</summary>
public interface ICapturedWork : IDisposable
{
    void Replay();
}
