using Kangaroo.Weights;

namespace Kangaroo.Backends;

/// <summary>
/// Argument checks every backend makes the same way (shapes, row counts, buffer extents, layers, positions), so that a
/// bad call fails with the same message on every backend instead of reading out of bounds.
/// </summary>
public static class BackendArguments
{
    public static void CheckMatrixShape(int rows, int columns)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
    }

    /// <summary>
    /// A weight view that can be used as a <c>[rows, columns]</c> matrix in place: data present, element count and byte
    /// length matching.
    /// </summary>
    public static unsafe void CheckWeightView(TensorView source, int rows, int columns)
    {
        CheckMatrixShape(rows, columns);
        if (source.Pointer == null)
            throw new ArgumentException($"tensor \"{source.Name}\" has no data", nameof(source));
        if (source.ElementCount != (long)rows * columns || source.ByteLength != source.ElementCount * source.DType.SizeInBytes())
            throw new ArgumentException(
                $"tensor \"{source.Name}\" ({source.DType}[{string.Join(", ", source.Shape)}], {source.ElementCount} elements) cannot be viewed as [{rows}, {columns}]",
                nameof(source));
    }

    /// <summary><see cref="IComputeBackend.LoadWeight(string, ReadOnlySpan{float}, int, int)"/>: a name, and as many values as the shape holds.</summary>
    public static void CheckWeightValues(string name, int valueCount, int rows, int columns)
    {
        ArgumentNullException.ThrowIfNull(name);
        CheckMatrixShape(rows, columns);
        if (valueCount != (long)rows * columns)
            throw new ArgumentException($"weight \"{name}\": {valueCount} values given, [{rows}, {columns}] needs {(long)rows * columns}", "values");
    }

    /// <summary><see cref="IComputeBackend.AllocateKvCache"/>: every extent positive.</summary>
    public static void CheckKvCacheShape(int layers, int capacity, int kvWidth, int sequences)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequences);
    }

    /// <summary><see cref="IComputeBackend.Upload(ReadOnlySpan{int}, IndexBuffer)"/>: the indices fit the buffer.</summary>
    public static void CheckIndexUpload(int count, int bufferLength)
    {
        if (count > bufferLength)
            throw new ArgumentException($"{count} indices do not fit a buffer of {bufferLength}", "source");
    }

    /// <summary><see cref="IComputeBackend.Copy"/>: both ranges inside their buffers.</summary>
    public static void CheckCopy(int sourceOffset, int sourceLength, int destinationOffset, int destinationLength, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        CheckRange(sourceOffset, count, sourceLength, nameof(sourceOffset));
        CheckRange(destinationOffset, count, destinationLength, nameof(destinationOffset));
    }

    public static void CheckRows(int rows) => ArgumentOutOfRangeException.ThrowIfNegative(rows);

    public static void CheckRows(int rows, int indexCount, string indicesName)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (rows > indexCount)
            throw new ArgumentException($"{rows} rows need {rows} indices, the buffer holds {indexCount}", indicesName);
    }

    public static void CheckExtent(long bufferLength, long rows, long width, string name)
    {
        if (rows * width > bufferLength)
            throw new ArgumentException($"{rows} rows × {width} = {rows * width} elements do not fit a buffer of {bufferLength}", name);
    }

    public static void CheckRange(int offset, int count, int length, string name)
    {
        if (offset < 0 || (long)offset + count > length)
            throw new ArgumentOutOfRangeException(name, offset, $"[{offset}, {(long)offset + count}) is outside a buffer of {length}");
    }

    public static void CheckVector(WeightTensor weight, int length, string name)
    {
        if (weight.Rows != 1 || weight.Columns != length)
            throw new ArgumentException($"weight \"{weight.Name}\" is [{weight.Rows}, {weight.Columns}], a [1, {length}] vector is needed", name);
    }

    /// <summary>A weight the kernels read as F32 only.</summary>
    public static void CheckFloat32(WeightTensor weight, string name)
    {
        if (weight.DType != DType.F32)
            throw new ArgumentException($"weight \"{weight.Name}\" must be F32, not {weight.DType}", name);
    }

    /// <summary><see cref="IComputeBackend.Embed"/>: a token id per row, each a row of the table, and room for the rows.</summary>
    public static void CheckEmbed(WeightTensor table, ReadOnlySpan<int> tokens, long outputLength, int rows)
    {
        CheckRows(rows, tokens.Length, nameof(tokens));
        CheckExtent(outputLength, rows, table.Columns, "output");
        for (int r = 0; r < rows; r++)
        {
            if ((uint)tokens[r] >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[r], $"token id at row {r} is outside the embedding table of {table.Rows} rows");
        }
    }

    /// <summary><see cref="IComputeBackend.RmsNorm"/>: a <c>[1, width]</c> weight, and rows of that width in both buffers.</summary>
    public static void CheckRmsNorm(long inputLength, WeightTensor weight, long outputLength, int rows, int width)
    {
        CheckVector(weight, width, nameof(weight));
        CheckRows(rows);
        CheckExtent(inputLength, rows, width, "input");
        CheckExtent(outputLength, rows, width, "output");
    }

    /// <summary><see cref="IComputeBackend.AddBias"/>: a <c>[1, width]</c> bias, and rows of that width in the values.</summary>
    public static void CheckAddBias(long valuesLength, WeightTensor bias, int rows, int width)
    {
        CheckVector(bias, width, nameof(bias));
        CheckRows(rows);
        CheckExtent(valuesLength, rows, width, "values");
    }

    /// <summary><see cref="IComputeBackend.AddRmsNorm"/>: a <c>[1, width]</c> weight, and rows of that width in all three buffers.</summary>
    public static void CheckAddRmsNorm(long residualLength, long deltaLength, WeightTensor weight, long normedLength, int rows, int width)
    {
        CheckVector(weight, width, nameof(weight));
        CheckRows(rows);
        CheckExtent(residualLength, rows, width, "residual");
        CheckExtent(deltaLength, rows, width, "delta");
        CheckExtent(normedLength, rows, width, "normed");
    }

    /// <summary><see cref="IComputeBackend.MatMul"/> (and each output of the fused MatMuls): rows of the input's and the output's width, in different buffers.</summary>
    public static void CheckMatMul(ComputeBuffer input, WeightTensor weight, ComputeBuffer output, int rows, string outputName = "output")
    {
        if (ReferenceEquals(input, output))
            throw new ArgumentException("MatMul cannot write its output over its input", outputName);
        CheckRows(rows);
        CheckExtent(input.Length, rows, weight.Columns, nameof(input));
        CheckExtent(output.Length, rows, weight.Rows, outputName);
    }

    /// <summary><see cref="IComputeBackend.Rope"/>: even, positive head dimension with a frequency per pair, and a position of [0, int.MaxValue) per row.</summary>
    public static void CheckRope(long xLength, ReadOnlySpan<int> positions, WeightTensor inverseFrequencies, int rows, int heads, int headDim,
        string name = "x")
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        if (headDim % 2 != 0)
            throw new ArgumentException($"head dimension {headDim} must be even for rotary embedding", nameof(headDim));
        CheckVector(inverseFrequencies, headDim / 2, nameof(inverseFrequencies));
        CheckRows(rows, positions.Length, nameof(positions));
        CheckExtent(xLength, rows, (long)heads * headDim, name);
        CheckPositions(positions, rows, int.MaxValue, nameof(positions));
    }

    /// <summary><see cref="IComputeBackend.StoreKv"/>: a layer of the cache, a slot of it per row, and rows of the cache's width.</summary>
    public static void CheckStoreKv(KvCacheStorage cache, int layer, long keysLength, long valuesLength, ReadOnlySpan<int> slots, int rows)
    {
        CheckLayer(cache, layer);
        CheckRows(rows, slots.Length, nameof(slots));
        CheckExtent(keysLength, rows, cache.KvWidth, "keys");
        CheckExtent(valuesLength, rows, cache.KvWidth, "values");
        CheckPositions(slots, rows, cache.Slots, nameof(slots));
    }

    /// <summary>
    /// <see cref="IComputeBackend.TreeAttention"/>: a layer of the cache, its
    /// head layout, rows of queries and outputs, and a position inside the cache per row (the tree's slots and the rows'
    /// sequences: <see cref="CheckRecentSlots"/>, <see cref="CheckSequences"/>).
    /// </summary>
    public static void CheckAttention(KvCacheStorage cache, int layer, long queriesLength, ReadOnlySpan<int> positions, long outputLength,
        int rows, int heads, int kvHeads, int headDim)
    {
        CheckLayer(cache, layer);
        CheckAttentionShape(cache, heads, kvHeads, headDim);
        CheckRows(rows, positions.Length, nameof(positions));
        long width = (long)heads * headDim;
        CheckExtent(queriesLength, rows, width, "queries");
        CheckExtent(outputLength, rows, width, "output");
        CheckPositions(positions, rows, cache.Capacity, nameof(positions));
    }

    /// <summary><see cref="IComputeBackend.SiluMul"/>: <paramref name="count"/> elements in every buffer.</summary>
    public static void CheckSiluMul(long gateLength, long upLength, long outputLength, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        CheckExtent(gateLength, count, 1, "gate");
        CheckExtent(upLength, count, 1, "up");
        CheckExtent(outputLength, count, 1, "output");
    }

    /// <summary><see cref="IComputeBackend.ArgmaxWithProbability"/>: rows of logits in the buffer, and a token and a probability slot per row.</summary>
    public static void CheckArgmax(ComputeBuffer logits, int rows, int vocab, Span<int> tokens, Span<float> probabilities)
    {
        CheckRows(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocab);
        CheckExtent(logits.Length, rows, vocab, nameof(logits));
        if (tokens.Length < rows)
            throw new ArgumentException($"{tokens.Length} token slots for {rows} rows", nameof(tokens));
        if (probabilities.Length < rows)
            throw new ArgumentException($"{probabilities.Length} probability slots for {rows} rows", nameof(probabilities));
    }

    public static void CheckLayer(KvCacheStorage cache, int layer)
    {
        if ((uint)layer >= (uint)cache.Layers)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"the cache has {cache.Layers} layers");
    }

    /// <summary>Every position/slot of the call must lie in [0, limit).</summary>
    public static void CheckPositions(ReadOnlySpan<int> positions, int rows, int limit, string name)
    {
        for (int r = 0; r < rows; r++)
        {
            if ((uint)positions[r] >= (uint)limit)
                throw new ArgumentOutOfRangeException(name, positions[r], $"row {r}: must be in [0, {limit})");
        }
    }

    /// <summary><see cref="IComputeBackend.MoveKvSlots"/>'s moves: pairs inside the cache, destinations ascending and never after their source.</summary>
    public static void CheckSlotMoves(ReadOnlySpan<int> from, ReadOnlySpan<int> to, int capacity)
    {
        if (from.Length != to.Length) throw new ArgumentException($"{from.Length} sources for {to.Length} destinations", nameof(to));
        for (int i = 0; i < from.Length; i++)
        {
            if ((uint)from[i] >= (uint)capacity) throw new ArgumentOutOfRangeException(nameof(from), from[i], $"move {i}: slot must be in [0, {capacity})");
            if ((uint)to[i] > (uint)from[i]) throw new ArgumentOutOfRangeException(nameof(to), to[i], $"move {i}: the destination must be in [0, {from[i]}] (its source)");
            if (i > 0 && to[i] <= to[i - 1]) throw new ArgumentException($"move {i}: destinations must ascend ({to[i - 1]}, then {to[i]})", nameof(to));
        }
    }

    /// <summary><see cref="IComputeBackend.TreeAttention"/>'s map: room for every row's window, each slot read inside the cache.</summary>
    public static void CheckRecentSlots(ReadOnlySpan<int> positions, ReadOnlySpan<int> recentSlots, int rows, int window, int capacity,
        string name)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(window);
        if (recentSlots.Length < (long)rows * window)
            throw new ArgumentException($"{recentSlots.Length} slots for {rows} rows × window {window}", name);
        for (int r = 0; r < rows; r++)
        {
            int read = Math.Min(window, positions[r] + 1);   // keys of the row's window that exist
            for (int j = 0; j < read; j++)
            {
                int slot = recentSlots[r * window + j];
                if ((uint)slot >= (uint)capacity)
                    throw new ArgumentOutOfRangeException(name, slot, $"row {r}, {j} back: slot must be in [0, {capacity})");
            }
        }
    }

    /// <summary><see cref="IComputeBackend.TopKWithProbabilities"/>: rows of logits in the buffer, k of [1, vocab], room for rows × k results.</summary>
    public static void CheckTopK(ComputeBuffer logits, int rows, int vocab, int k, Span<int> tokens, Span<float> probabilities)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocab);
        if (k < 1 || k > vocab) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in [1, {vocab}]");
        CheckExtent(logits.Length, rows, vocab, nameof(logits));
        if (tokens.Length < (long)rows * k || probabilities.Length < (long)rows * k)
            throw new ArgumentException($"{rows} rows × k {k} need {rows * k} tokens and probabilities ({tokens.Length}, {probabilities.Length} given)");
    }

    /// <summary><see cref="IComputeBackend.CopyRows"/>: rows inside both buffers; in one buffer, no row both read and written.</summary>
    public static void CheckRowCopies(ReadOnlySpan<int> sourceRows, ReadOnlySpan<int> destinationRows, int rows, int width,
        long sourceLength, long destinationLength, bool sameBuffer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        if (sourceRows.Length < rows || destinationRows.Length < rows)
            throw new ArgumentException($"{rows} rows need as many source and destination rows ({sourceRows.Length}, {destinationRows.Length} given)");
        long sourceCount = sourceLength / width, destinationCount = destinationLength / width;
        for (int i = 0; i < rows; i++)
        {
            if ((ulong)sourceRows[i] >= (ulong)sourceCount)
                throw new ArgumentOutOfRangeException(nameof(sourceRows), sourceRows[i], $"copy {i}: the source holds rows [0, {sourceCount})");
            if ((ulong)destinationRows[i] >= (ulong)destinationCount)
                throw new ArgumentOutOfRangeException(nameof(destinationRows), destinationRows[i], $"copy {i}: the destination holds rows [0, {destinationCount})");
        }
        if (!sameBuffer) return;
        // A scheduler's copies are a few rows per call: the quadratic check allocates nothing.
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < rows; j++)
            {
                if (destinationRows[i] == sourceRows[j])
                    throw new ArgumentException($"copy {i}: row {destinationRows[i]} of the buffer is both read and written", nameof(destinationRows));
            }
        }
    }

    /// <summary><see cref="IComputeBackend.TreeAttention"/>'s sequence of each row: one of the cache's sequences.</summary>
    public static void CheckSequences(ReadOnlySpan<int> sequences, int rows, KvCacheStorage cache, string name)
    {
        if (sequences.Length < rows) throw new ArgumentException($"{sequences.Length} sequence ids for {rows} rows", name);
        CheckPositions(sequences, rows, cache.Sequences, name);
    }

    /// <summary>Attention's head layout: positive counts, query heads grouped evenly over KV heads that fill the cache's width.</summary>
    public static void CheckAttentionShape(KvCacheStorage cache, int heads, int kvHeads, int headDim)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        if (heads % kvHeads != 0)
            throw new ArgumentException($"{heads} query heads cannot be grouped over {kvHeads} KV heads", nameof(kvHeads));
        if ((long)kvHeads * headDim != cache.KvWidth)
            throw new ArgumentException($"{kvHeads} KV heads × {headDim} = {(long)kvHeads * headDim} does not match the cache's KV width {cache.KvWidth}", nameof(kvHeads));
    }

    /// <summary>The recent slots a window needs: none for window 0 (plain causal attention), a buffer otherwise.</summary>
    public static T? RecentSlotsFor<T>(T? recentSlots, int window) where T : class
    {
        ArgumentOutOfRangeException.ThrowIfNegative(window);
        if (window == 0) return null;
        return recentSlots ?? throw new ArgumentNullException(nameof(recentSlots), $"a window of {window} recent slots needs the slots");
    }
}
