using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Kangaroo.Weights;

using static Kangaroo.Backends.BackendArguments;

namespace Kangaroo.Backends.Cpu;

/// <summary>Managed SIMD backend (System.Numerics.Tensors), all cores. The reference the GPU backends are tested against.</summary>
/// <remarks>
/// Row invariance comes from structure, not from care at each call site: every op computes each output row
/// (and each MatMul output element) with one routine whose blocking depends only on the row's width, and work
/// is split across threads only along independent outputs (features, rows, heads), never inside a reduction.
/// Parallel paths live in separate methods so that the closure Parallel.For needs is not allocated when a
/// call runs inline (the one-row decode step, or <c>threads = 1</c>).
/// </remarks>
public sealed class CpuBackend : IComputeBackend, IBandwidthProbe
{
    /// <summary>MatMul work items per thread: enough to balance uneven progress, few enough to stay cheap.</summary>
    private const int ChunksPerThread = 4;

    /// <summary>Elementwise/row ops below this many elements run inline: thread hand-off costs more than the work.</summary>
    private const int ParallelElementThreshold = 1 << 15;

    private readonly int _threads;
    private readonly ParallelOptions _parallelOptions;

    /// <param name="threads">Worker threads; null = all cores.</param>
    public CpuBackend(int? threads = null)
    {
        if (threads is <= 0)
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be positive");
        _threads = threads ?? Environment.ProcessorCount;
        _parallelOptions = new ParallelOptions { MaxDegreeOfParallelism = _threads };
        DeviceName = $"{ReadCpuModel()}, {_threads} thread{(_threads == 1 ? "" : "s")}";
    }

    public string Name => "cpu";

    public string DeviceName { get; }

    public int Threads => _threads;

    // ---------------------------------------------------------------- resources

    public unsafe WeightTensor LoadWeight(TensorView source, int rows, int columns)
    {
        CheckWeightView(source, rows, columns);
        return new CpuWeightTensor(source.Name, source.DType, rows, columns, source.Pointer);
    }

    public WeightTensor LoadWeight(string name, ReadOnlySpan<float> values, int rows, int columns)
    {
        CheckWeightValues(name, values.Length, rows, columns);
        return new CpuWeightTensor(name, values, rows, columns);
    }

    public ComputeBuffer Allocate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return new CpuComputeBuffer(length);
    }

    public IndexBuffer AllocateIndices(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return new CpuIndexBuffer(length);
    }

    public KvCacheStorage AllocateKvCache(int layers, int capacity, int kvWidth, int sequences = 1)
    {
        CheckKvCacheShape(layers, capacity, kvWidth, sequences);
        return new CpuKvCache(layers, capacity, kvWidth, sequences);
    }

    public void Upload(ReadOnlySpan<float> source, ComputeBuffer destination, int destinationOffset = 0)
    {
        float[] target = AsCpu(destination, nameof(destination)).Data;
        CheckRange(destinationOffset, source.Length, target.Length, nameof(destinationOffset));
        source.CopyTo(target.AsSpan(destinationOffset));
    }

    public void Upload(ReadOnlySpan<int> source, IndexBuffer destination)
    {
        int[] target = AsCpu(destination, nameof(destination)).Data;
        CheckIndexUpload(source.Length, target.Length);
        source.CopyTo(target);
    }

    public void Download(ComputeBuffer source, int sourceOffset, Span<float> destination)
    {
        float[] data = AsCpu(source, nameof(source)).Data;
        CheckRange(sourceOffset, destination.Length, data.Length, nameof(sourceOffset));
        data.AsSpan(sourceOffset, destination.Length).CopyTo(destination);
    }

    public void CopyRows(ComputeBuffer source, IndexBuffer sourceRows, ComputeBuffer destination, IndexBuffer destinationRows, int rows, int width)
    {
        float[] from = AsCpu(source, nameof(source)).Data;
        float[] to = AsCpu(destination, nameof(destination)).Data;
        int[] read = AsCpu(sourceRows, nameof(sourceRows)).Data, write = AsCpu(destinationRows, nameof(destinationRows)).Data;
        CheckRowCopies(read, write, rows, width, source.Length, destination.Length, ReferenceEquals(from, to));
        for (int i = 0; i < rows; i++)
            from.AsSpan(read[i] * width, width).CopyTo(to.AsSpan(write[i] * width, width));
    }

    public void Copy(ComputeBuffer source, int sourceOffset, ComputeBuffer destination, int destinationOffset, int count)
    {
        float[] from = AsCpu(source, nameof(source)).Data;
        float[] to = AsCpu(destination, nameof(destination)).Data;
        CheckCopy(sourceOffset, from.Length, destinationOffset, to.Length, count);
        // Span.CopyTo handles overlap within one buffer like memmove.
        from.AsSpan(sourceOffset, count).CopyTo(to.AsSpan(destinationOffset, count));
    }

    // ---------------------------------------------------------------- ops

    public void Embed(WeightTensor table, IndexBuffer tokens, ComputeBuffer output, int rows)
    {
        CpuWeightTensor weights = AsCpu(table);
        int[] ids = AsCpu(tokens, nameof(tokens)).Data;
        float[] result = AsCpu(output, nameof(output)).Data;
        // Every id is checked before anything is written, so a bad batch leaves the output untouched.
        CheckEmbed(weights, ids, result.Length, rows);
        int width = weights.Columns;
        for (int r = 0; r < rows; r++)
            CpuKernels.ConvertToFloat32(weights.DType, weights.RowBytes(ids[r]), result.AsSpan(r * width, width));
    }

    public void RmsNorm(ComputeBuffer input, WeightTensor weight, float eps, ComputeBuffer output, int rows, int width)
    {
        float[] x = AsCpu(input, nameof(input)).Data;
        float[] y = AsCpu(output, nameof(output)).Data;
        CpuWeightTensor gamma = AsCpu(weight);
        CheckRmsNorm(x.Length, gamma, y.Length, rows, width);
        if (_threads == 1 || rows == 1 || (long)rows * width < ParallelElementThreshold)
        {
            for (int r = 0; r < rows; r++)
                RmsNormRow(x, gamma, eps, y, r, width);
        }
        else
        {
            RmsNormParallel(x, gamma, eps, y, rows, width);
        }
    }

    private void RmsNormParallel(float[] x, CpuWeightTensor gamma, float eps, float[] y, int rows, int width) =>
        Parallel.For(0, rows, _parallelOptions, r => RmsNormRow(x, gamma, eps, y, r, width));

    public void AddRmsNorm(ComputeBuffer residual, ComputeBuffer delta, WeightTensor weight, float eps, ComputeBuffer normed, int rows, int width)
    {
        float[] sum = AsCpu(residual, nameof(residual)).Data;
        float[] addend = AsCpu(delta, nameof(delta)).Data;
        float[] y = AsCpu(normed, nameof(normed)).Data;
        CpuWeightTensor gamma = AsCpu(weight);
        CheckAddRmsNorm(sum.Length, addend.Length, gamma, y.Length, rows, width);
        if (_threads == 1 || rows == 1 || (long)rows * width < ParallelElementThreshold)
        {
            for (int r = 0; r < rows; r++)
                AddRmsNormRow(sum, addend, gamma, eps, y, r, width);
        }
        else
        {
            AddRmsNormParallel(sum, addend, gamma, eps, y, rows, width);
        }
    }

    private void AddRmsNormParallel(float[] sum, float[] addend, CpuWeightTensor gamma, float eps, float[] y, int rows, int width) =>
        Parallel.For(0, rows, _parallelOptions, r => AddRmsNormRow(sum, addend, gamma, eps, y, r, width));

    private static void AddRmsNormRow(float[] residual, float[] delta, CpuWeightTensor gamma, float eps, float[] normed, int row, int width)
    {
        Span<float> sum = residual.AsSpan(row * width, width);
        TensorPrimitives.Add(sum, delta.AsSpan(row * width, width), sum);
        // The very routine RmsNorm uses, so the fused op has the bits of the unfused pair.
        RmsNormRow(residual, gamma, eps, normed, row, width);
    }

    public void AddBias(ComputeBuffer values, WeightTensor bias, int rows, int width)
    {
        float[] x = AsCpu(values, nameof(values)).Data;
        CpuWeightTensor b = AsCpu(bias);
        CheckAddBias(x.Length, b, rows, width);
        if (rows == 0) return;
        ReadOnlySpan<float> addend = b.RowAsFloat32(0, CpuScratch.WeightVector(width));
        // One addition per element: the same bits in any SIMD lane or tail.
        for (int r = 0; r < rows; r++)
        {
            Span<float> row = x.AsSpan(r * width, width);
            TensorPrimitives.Add(row, addend, row);
        }
    }

    private static void RmsNormRow(float[] input, CpuWeightTensor gamma, float eps, float[] output, int row, int width)
    {
        ReadOnlySpan<float> x = input.AsSpan(row * width, width);
        Span<float> y = output.AsSpan(row * width, width);
        ReadOnlySpan<float> scale = gamma.RowAsFloat32(0, CpuScratch.WeightVector(width));
        float meanSquare = CpuKernels.Dot(x, x) / width;
        float inverseRms = 1f / MathF.Sqrt(meanSquare + eps);
        // Elementwise products round the same in any SIMD lane or tail, so TensorPrimitives is safe here.
        TensorPrimitives.Multiply(x, inverseRms, y);
        TensorPrimitives.Multiply(y, scale, y);
    }

    public void MatMul(ComputeBuffer input, WeightTensor weight, ComputeBuffer output, int rows)
    {
        float[] x = AsCpu(input, nameof(input)).Data;
        float[] y = AsCpu(output, nameof(output)).Data;
        CpuWeightTensor w = AsCpu(weight);
        CheckMatMul(input, w, output, rows);
        if (rows == 0)
            return;

        // Work is split along output features in groups of CpuMatMul's pass width: each output element's sum is
        // computed whole by one thread, in an order fixed by the row width (CpuMatMul), so its bits do not depend on
        // the chunking or the row count.
        int groups = (w.Rows + CpuMatMul.WeightRowsPerPass - 1) / CpuMatMul.WeightRowsPerPass;
        int chunks = Math.Min(groups, _threads * ChunksPerThread);
        // Tiny matrices cost less than waking the thread pool.
        if (_threads == 1 || chunks == 1 || (long)rows * w.Rows * w.Columns < ParallelElementThreshold * 2L)
            MatMulRange(x, w, y, rows, 0, w.Rows);
        else
            MatMulParallel(x, w, y, rows, groups, chunks);
    }

    private void MatMulParallel(float[] x, CpuWeightTensor w, float[] y, int rows, int groups, int chunks) =>
        Parallel.For(0, chunks, _parallelOptions, chunk =>
        {
            int start = (int)((long)chunk * groups / chunks) * CpuMatMul.WeightRowsPerPass;
            int end = (int)Math.Min((long)(chunk + 1) * groups / chunks * CpuMatMul.WeightRowsPerPass, w.Rows);
            MatMulRange(x, w, y, rows, start, end);
        });

    /// <summary>Output features [start, end) for every row.</summary>
    private static void MatMulRange(float[] input, CpuWeightTensor weight, float[] output, int rows, int start, int end)
    {
        // More than two rows widen each group of weight rows once into this tile and reuse it for every row.
        Span<float> tile = rows > 2 && weight.DType != DType.F32 ? CpuScratch.WeightRows(CpuMatMul.WeightRowsPerPass * weight.Columns) : default;
        CpuMatMul.Range(input, weight, output, rows, start, end, tile);
    }

    public void Rope(ComputeBuffer x, IndexBuffer positions, WeightTensor inverseFrequencies, int rows, int heads, int headDim)
    {
        float[] values = AsCpu(x, nameof(x)).Data;
        int[] at = AsCpu(positions, nameof(positions)).Data;
        CpuWeightTensor frequencies = AsCpu(inverseFrequencies);
        CheckRope(values.Length, at, frequencies, rows, heads, headDim);
        long width = (long)heads * headDim;
        if (_threads == 1 || rows == 1 || rows * width < ParallelElementThreshold)
        {
            for (int r = 0; r < rows; r++)
                RopeRow(values, at[r], frequencies, r, heads, headDim);
        }
        else
        {
            RopeParallel(values, at, frequencies, rows, heads, headDim);
        }
    }

    private void RopeParallel(float[] values, int[] at, CpuWeightTensor frequencies, int rows, int heads, int headDim) =>
        Parallel.For(0, rows, _parallelOptions, r => RopeRow(values, at[r], frequencies, r, heads, headDim));

    private static void RopeRow(float[] values, int position, CpuWeightTensor frequencies, int row, int heads, int headDim)
    {
        int half = headDim / 2;
        ReadOnlySpan<float> inverseFrequency = frequencies.RowAsFloat32(0, CpuScratch.WeightVector(half));
        Span<float> table = CpuScratch.Table(headDim);
        Span<float> cos = table[..half];
        Span<float> sin = table[half..];
        for (int i = 0; i < half; i++)
        {
            // The angle is an F32 product, as Hugging Face computes freqs = inv_freq @ positions in float32.
            float angle = position * inverseFrequency[i];
            (sin[i], cos[i]) = MathF.SinCos(angle);
        }
        Span<float> rowValues = values.AsSpan(row * heads * headDim, heads * headDim);
        for (int h = 0; h < heads; h++)
        {
            Span<float> first = rowValues.Slice(h * headDim, half);
            Span<float> second = rowValues.Slice(h * headDim + half, half);
            for (int i = 0; i < half; i++)
            {
                float a = first[i], b = second[i];
                first[i] = a * cos[i] - b * sin[i];
                second[i] = b * cos[i] + a * sin[i];
            }
        }
    }

    public unsafe void StoreKv(KvCacheStorage cache, int layer, ComputeBuffer keys, ComputeBuffer values, IndexBuffer slots, int rows)
    {
        CpuKvCache kv = AsCpu(cache);
        float[] k = AsCpu(keys, nameof(keys)).Data;
        float[] v = AsCpu(values, nameof(values)).Data;
        int[] at = AsCpu(slots, nameof(slots)).Data;
        CheckStoreKv(kv, layer, k.Length, v.Length, at, rows);
        int width = kv.KvWidth;
        for (int r = 0; r < rows; r++)
        {
            k.AsSpan(r * width, width).CopyTo(new Span<float>(kv.KeyRow(layer, at[r]), width));
            v.AsSpan(r * width, width).CopyTo(new Span<float>(kv.ValueRow(layer, at[r]), width));
        }
    }

    public bool SupportsSlidingWindow => true;

    public void TreeAttention(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, IndexBuffer? recentSlots,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, IndexBuffer? sequences = null, int slidingWindow = 0) =>
        AttentionOverSlots(queries, cache, layer, positions,
            RecentSlotsFor(recentSlots, window) is { } recent ? AsCpu(recent, nameof(recentSlots)).Data : null, window, output,
            rows, heads, kvHeads, headDim, sequences is null ? null : AsCpu(sequences, nameof(sequences)).Data, slidingWindow);

    private void AttentionOverSlots(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, int[]? recent,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, int[]? sequences = null, int slidingWindow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slidingWindow);
        float[] q = AsCpu(queries, nameof(queries)).Data;
        float[] o = AsCpu(output, nameof(output)).Data;
        int[] at = AsCpu(positions, nameof(positions)).Data;
        CpuKvCache kv = AsCpu(cache);
        CheckAttention(kv, layer, q.Length, at, o.Length, rows, heads, kvHeads, headDim);
        if (recent is not null) CheckRecentSlots(at, recent, rows, window, kv.Slots, "recentSlots");
        if (sequences is not null) CheckSequences(sequences, rows, kv, nameof(sequences));

        var keys = new KeySlots(at, recent, recent is null ? 0 : window, sequences, kv.Capacity, slidingWindow);
        float scale = 1f / MathF.Sqrt(headDim);
        int items = rows * heads;
        if (_threads == 1 || items == 1 || (long)items * ((long)TensorPrimitives.Max<int>(at.AsSpan(0, rows)) + 1) * headDim < ParallelElementThreshold)
        {
            for (int item = 0; item < items; item++)
                AttentionHead(q, kv, layer, at, keys, o, item, heads, kvHeads, headDim, scale);
        }
        else
        {
            AttentionParallel(q, kv, layer, at, keys, o, items, heads, kvHeads, headDim, scale);
        }
    }

    public unsafe void MoveKvSlots(KvCacheStorage cache, ReadOnlySpan<int> from, ReadOnlySpan<int> to)
    {
        CpuKvCache kv = AsCpu(cache);
        CheckSlotMoves(from, to, kv.Slots);
        int width = kv.KvWidth;
        for (int i = 0; i < from.Length; i++)
        {
            if (from[i] == to[i]) continue;
            for (int layer = 0; layer < kv.Layers; layer++)
            {
                new ReadOnlySpan<float>(kv.KeyRow(layer, from[i]), width).CopyTo(new Span<float>(kv.KeyRow(layer, to[i]), width));
                new ReadOnlySpan<float>(kv.ValueRow(layer, from[i]), width).CopyTo(new Span<float>(kv.ValueRow(layer, to[i]), width));
            }
        }
    }

    /// <summary>Where the key at a logical position lives: the row's window of recent slots, else the position itself in the row's sequence.</summary>
    private readonly record struct KeySlots(int[] Positions, int[]? Recent, int Window, int[]? Sequences, int Capacity, int SlidingWindow)
    {
        /// <summary>The oldest position row <paramref name="row"/> attends to: 0, or the start of its sliding window.</summary>
        public int FirstKey(int row) => SlidingWindow > 0 ? Math.Max(0, Positions[row] - SlidingWindow + 1) : 0;

        public int Slot(int row, int position)
        {
            int back = Positions[row] - position;
            if (back < Window) return Recent![row * Window + back];
            return Sequences is null ? position : Sequences[row] * Capacity + position;
        }
    }

    private void AttentionParallel(float[] q, CpuKvCache kv, int layer, int[] at, KeySlots keys, float[] o, int items, int heads, int kvHeads,
        int headDim, float scale) =>
        Parallel.For(0, items, _parallelOptions, item => AttentionHead(q, kv, layer, at, keys, o, item, heads, kvHeads, headDim, scale));

    /// <summary>
    /// One (row, head): scores over keys 0..position in key order, softmax, then the value sum in key order —
    /// a sequence fixed by the position alone (the slots only say where each key is stored). Safe in place
    /// (output = queries): the query is fully consumed by the scores before the output slice is written.
    /// </summary>
    private static unsafe void AttentionHead(float[] queries, CpuKvCache kv, int layer, int[] positions, KeySlots slots, float[] output,
        int item, int heads, int kvHeads, int headDim, float scale)
    {
        int row = item / heads;
        int head = item % heads;
        int firstKey = slots.FirstKey(row);
        int keyCount = positions[row] + 1 - firstKey;
        int kvWidth = kv.KvWidth;
        int kvOffset = head / (heads / kvHeads) * headDim;
        float* keys = kv.KeyRow(layer, 0) + kvOffset;
        float* values = kv.ValueRow(layer, 0) + kvOffset;
        int queryOffset = (row * heads + head) * headDim;

        Span<float> scores = CpuScratch.Table(keyCount);
        ReadOnlySpan<float> query = queries.AsSpan(queryOffset, headDim);
        for (int t = 0; t < keyCount; t++)
            scores[t] = CpuKernels.Dot(query, new ReadOnlySpan<float>(keys + (long)slots.Slot(row, firstKey + t) * kvWidth, headDim)) * scale;

        float max = TensorPrimitives.Max(scores);
        CpuKernels.ExpOfDifference(scores, max, scores);
        float sum = CpuKernels.Sum(scores);
        TensorPrimitives.Divide(scores, sum, scores);

        Span<float> result = output.AsSpan(queryOffset, headDim);
        result.Clear();
        for (int t = 0; t < keyCount; t++)
            CpuKernels.MultiplyAdd(new ReadOnlySpan<float>(values + (long)slots.Slot(row, firstKey + t) * kvWidth, headDim), scores[t], result);
    }

    public void SiluMul(ComputeBuffer gate, ComputeBuffer up, ComputeBuffer output, int count)
    {
        float[] g = AsCpu(gate, nameof(gate)).Data;
        float[] u = AsCpu(up, nameof(up)).Data;
        float[] o = AsCpu(output, nameof(output)).Data;
        CheckSiluMul(g.Length, u.Length, o.Length, count);
        // Each element's bits depend on its inputs only (padded vector tail), so any chunking gives the same result.
        if (_threads == 1 || count < ParallelElementThreshold)
            CpuKernels.SiluMultiply(g.AsSpan(0, count), u.AsSpan(0, count), o.AsSpan(0, count));
        else
            SiluMulParallel(g, u, o, count);
    }

    private void SiluMulParallel(float[] g, float[] u, float[] o, int count)
    {
        int chunks = Math.Min(_threads * ChunksPerThread, (count + ParallelElementThreshold / 4 - 1) / (ParallelElementThreshold / 4));
        Parallel.For(0, chunks, _parallelOptions, chunk =>
        {
            int start = (int)((long)chunk * count / chunks);
            int end = (int)((long)(chunk + 1) * count / chunks);
            CpuKernels.SiluMultiply(g.AsSpan(start, end - start), u.AsSpan(start, end - start), o.AsSpan(start, end - start));
        });
    }

    public void TopKWithProbabilities(ComputeBuffer logits, int rows, int vocab, int k, Span<int> tokens, Span<float> probabilities)
    {
        CheckTopK(logits, rows, vocab, k, tokens, probabilities);
        float[] values = AsCpu(logits, nameof(logits)).Data;
        for (int r = 0; r < rows; r++)
            TopKReference.Select(values.AsSpan(r * vocab, vocab), tokens.Slice(r * k, k), probabilities.Slice(r * k, k));
    }

    public void ArgmaxWithProbability(ComputeBuffer logits, int rows, int vocab, Span<int> tokens, Span<float> probabilities)
    {
        float[] values = AsCpu(logits, nameof(logits)).Data;
        CheckArgmax(logits, rows, vocab, tokens, probabilities);

        // exp(l − max) is summed in fixed 1024-element chunks from index 0: a stack buffer instead of a
        // vocabulary-sized scratch, with an order fixed by the vocabulary size alone.
        const int ChunkLength = 1024;
        Span<float> exponentials = stackalloc float[ChunkLength];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = values.AsSpan(r * vocab, vocab);
            // IndexOfMax returns the first index of the maximum, i.e. the lowest index on ties.
            int best = TensorPrimitives.IndexOfMax(row);
            float max = row[best];
            float sum = 0f;
            for (int start = 0; start < vocab; start += ChunkLength)
            {
                ReadOnlySpan<float> chunk = row.Slice(start, Math.Min(ChunkLength, vocab - start));
                Span<float> exps = exponentials[..chunk.Length];
                CpuKernels.ExpOfDifference(chunk, max, exps);
                sum += CpuKernels.Sum(exps);
            }
            tokens[r] = best;
            probabilities[r] = 1f / sum;
        }
    }

    /// <summary>
    /// Main-memory bandwidth with this backend's threads: a copy and a sum (TensorPrimitives) of <paramref name="bytes"/>,
    /// split in one chunk per thread, each the median of 5 runs after a warm-up.
    /// </summary>
    public BandwidthFigures MeasureBandwidth(long bytes = 1L << 30)
    {
        int floats = (int)Math.Clamp(bytes / sizeof(float), _threads * 1024L, Array.MaxLength / 2);
        var source = GC.AllocateUninitializedArray<float>(floats);
        var destination = GC.AllocateUninitializedArray<float>(floats);
        source.AsSpan().Fill(1f);
        int chunk = (floats + _threads - 1) / _threads;
        var sums = new float[_threads];
        double Median(Action<int> part)
        {
            var times = new double[6];
            for (int i = 0; i < times.Length; i++)
            {
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                Parallel.For(0, _threads, _parallelOptions, part);
                times[i] = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }
            Array.Sort(times, 1, times.Length - 1);   // times[0] is the warm-up
            return times[1 + (times.Length - 1) / 2];
        }
        Span<float> Part(float[] array, int t) => array.AsSpan(t * chunk, Math.Max(0, Math.Min(chunk, floats - t * chunk)));
        double copy = Median(t => Part(source, t).CopyTo(Part(destination, t)));
        double read = Median(t => sums[t] = TensorPrimitives.Sum<float>(Part(source, t)));
        long moved = (long)floats * sizeof(float);
        return new BandwidthFigures(2.0 * moved / (copy * 1e3), moved / (read * 1e3), moved);
    }

    public void Synchronize()
    {
    }

    public void Dispose()
    {
        // Buffers, weights and caches are owned (and disposed) by their users; the backend holds nothing.
    }

    // ---------------------------------------------------------------- validation

    private static CpuComputeBuffer AsCpu(ComputeBuffer buffer, string name) =>
        buffer as CpuComputeBuffer ?? throw Foreign(buffer, name);

    private static CpuIndexBuffer AsCpu(IndexBuffer buffer, string name) =>
        buffer as CpuIndexBuffer ?? throw Foreign(buffer, name);

    private static CpuWeightTensor AsCpu(WeightTensor weight)
    {
        var cpu = weight as CpuWeightTensor ?? throw Foreign(weight, nameof(weight));
        cpu.ThrowIfDisposed();
        return cpu;
    }

    private static CpuKvCache AsCpu(KvCacheStorage cache) =>
        cache as CpuKvCache ?? throw Foreign(cache, nameof(cache));

    private static ArgumentException Foreign(object? resource, string name) => resource is null
        ? new ArgumentNullException(name)
        : new ArgumentException($"{resource.GetType().Name} was not created by the CPU backend", name);

    private static string ReadCpuModel()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (string line in File.ReadLines("/proc/cpuinfo"))
                {
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is int colon and >= 0)
                        return line[(colon + 1)..].Trim();
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return $"{RuntimeInformation.ProcessArchitecture} CPU ({RuntimeInformation.OSDescription})";
    }
}
