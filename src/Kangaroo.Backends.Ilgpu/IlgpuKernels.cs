using ILGPU;

namespace Kangaroo.Backends.Ilgpu;

/// <summary>
/// The device code of <see cref="IlgpuBackend"/>, compiled by ILGPU for whichever accelerator runs it.
/// <para>
/// Row invariance by construction: every kernel gives each output element (or each row's reduction) to one thread,
/// which loops over its inputs in index order. The launch size only decides how many such threads exist, never how
/// a sum is split, so a row's bits cannot depend on the call's other rows.
/// </para>
/// <para>
/// Weights arrive as two views over the same bytes (F32 and 16-bit) plus a dtype code; the branch on the code is
/// uniform over a launch, so one kernel serves all three weight types.
/// </para>
/// </summary>
internal static class IlgpuKernels
{
    public const int F32 = 0;
    public const int F16 = 1;
    public const int BF16 = 2;

    /// <summary>Weight element <paramref name="index"/> widened to F32 (exact for every dtype).</summary>
    private static float WeightAt(ArrayView<float> asF32, ArrayView<ushort> as16, int dtype, long index)
    {
        if (dtype == F32)
            return asF32[index];
        uint bits = as16[index];
        return dtype == BF16 ? Interop.IntAsFloat(bits << 16) : HalfToFloat(bits);
    }

    /// <summary>IEEE half → single by bit manipulation, so the widening is exact on every accelerator.</summary>
    private static float HalfToFloat(uint half)
    {
        uint sign = (half & 0x8000u) << 16;
        uint exponent = (half >> 10) & 0x1Fu;
        uint mantissa = half & 0x3FFu;
        if (exponent == 0x1Fu)
            return Interop.IntAsFloat(sign | 0x7F800000u | (mantissa << 13));
        if (exponent != 0)
            return Interop.IntAsFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
        // Zero or subnormal: mantissa · 2⁻²⁴ is exact in F32 (at most 10 significant bits times a power of two).
        float magnitude = mantissa * 5.9604644775390625e-8f;
        return Interop.IntAsFloat(sign | Interop.FloatAsInt(magnitude));
    }

    /// <summary>One thread per output element: output[r, c] = table[tokens[r], c].</summary>
    public static void Embed(Index1D index, ArrayView<int> tokens, ArrayView<float> tableF32, ArrayView<ushort> table16, int dtype,
        int width, ArrayView<float> output)
    {
        int row = index / width;
        int column = index - row * width;
        output[index] = WeightAt(tableF32, table16, dtype, (long)tokens[row] * width + column);
    }

    /// <summary>One thread per row; the sum of squares runs over the row in order.</summary>
    public static void RmsNorm(Index1D row, ArrayView<float> input, ArrayView<float> gammaF32, ArrayView<ushort> gamma16, int dtype,
        float eps, int width, ArrayView<float> output)
    {
        NormalizeRow(input, gammaF32, gamma16, dtype, eps, width, output, row);
    }

    /// <summary>residual += delta, then the very routine <see cref="RmsNorm"/> uses, so the fused op has the unfused bits.</summary>
    public static void AddRmsNorm(Index1D row, ArrayView<float> residual, ArrayView<float> delta, ArrayView<float> gammaF32,
        ArrayView<ushort> gamma16, int dtype, float eps, int width, ArrayView<float> normed)
    {
        long start = (long)row.X * width;
        for (int i = 0; i < width; i++)
            residual[start + i] = residual[start + i] + delta[start + i];
        NormalizeRow(residual, gammaF32, gamma16, dtype, eps, width, normed, row);
    }

    /// <summary>One thread per element: values[r, c] += bias[c].</summary>
    public static void AddBias(Index1D index, ArrayView<float> values, ArrayView<float> biasF32, ArrayView<ushort> bias16, int dtype, int width)
    {
        values[index] = values[index] + WeightAt(biasF32, bias16, dtype, index % width);
    }

    private static void NormalizeRow(ArrayView<float> input, ArrayView<float> gammaF32, ArrayView<ushort> gamma16, int dtype,
        float eps, int width, ArrayView<float> output, int row)
    {
        long start = (long)row * width;
        float sumOfSquares = 0f;
        for (int i = 0; i < width; i++)
        {
            float x = input[start + i];
            sumOfSquares += x * x;
        }
        float inverseRms = 1f / MathF.Sqrt(sumOfSquares / width + eps);
        // Safe in place: every input of the row has been read before the first write.
        for (int i = 0; i < width; i++)
            output[start + i] = input[start + i] * inverseRms * WeightAt(gammaF32, gamma16, dtype, i);
    }

    /// <summary>One thread per output element output[r, o] = Σ_i input[r, i] · weight[o, i], i ascending.</summary>
    public static void MatMul(Index1D index, ArrayView<float> input, ArrayView<float> weightF32, ArrayView<ushort> weight16, int dtype,
        int columns, int outFeatures, ArrayView<float> output)
    {
        int row = index / outFeatures;
        int feature = index - row * outFeatures;
        long inputStart = (long)row * columns;
        long weightStart = (long)feature * columns;
        float sum = 0f;
        if (dtype == F32)
        {
            for (int i = 0; i < columns; i++)
                sum += input[inputStart + i] * weightF32[weightStart + i];
        }
        else
        {
            for (int i = 0; i < columns; i++)
                sum += input[inputStart + i] * WeightAt(weightF32, weight16, dtype, weightStart + i);
        }
        output[index] = sum;
    }

    /// <summary>
    /// One thread per rotated pair (row, head, i): elements i and i + headDim/2 rotate by positions[r] · invFreq[i],
    /// the angle an F32 product as in Hugging Face.
    /// </summary>
    public static void Rope(Index1D index, ArrayView<float> x, ArrayView<int> positions, ArrayView<float> inverseFrequencies,
        int heads, int headDim)
    {
        int half = headDim / 2;
        int pairsPerRow = heads * half;
        int row = index / pairsPerRow;
        int withinRow = index - row * pairsPerRow;
        int head = withinRow / half;
        int i = withinRow - head * half;
        float angle = positions[row] * inverseFrequencies[i];
        SinCos(angle, out float sin, out float cos);
        long first = (long)row * heads * headDim + (long)head * headDim + i;
        float a = x[first], b = x[first + half];
        x[first] = a * cos - b * sin;
        x[first + half] = b * cos + a * sin;
    }

    /// <summary>
    /// sin and cos of an F32 angle to within an ulp of the correctly rounded values, on every accelerator. ILGPU's GPU
    /// back ends have no sin/cos of their own and ILGPU.Algorithms' approximations drift by ~1e-4 at RoPE's large
    /// angles (position · inv_freq reaches 10⁵), so this reduces by π/2 in F64 and evaluates Taylor polynomials on
    /// |r| ≤ π/4, where the first omitted term is below 1e-16. Plain arithmetic only: no intrinsics needed.
    /// </summary>
    public static void SinCos(float angle, out float sin, out float cos)
    {
        const double TwoOverPi = 0.63661977236758134308, PiOverTwo = 1.57079632679489661923;
        double a = angle;
        double scaled = a * TwoOverPi;
        long quadrant = (long)(scaled >= 0 ? scaled + 0.5 : scaled - 0.5);
        double r = a - quadrant * PiOverTwo;
        double r2 = r * r;
        double s = r * (1 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880 + r2 * (-1.0 / 39916800
            + r2 * (1.0 / 6227020800 + r2 * (-1.0 / 1307674368000))))))));
        double c = 1 + r2 * (-0.5 + r2 * (1.0 / 24 + r2 * (-1.0 / 720 + r2 * (1.0 / 40320 + r2 * (-1.0 / 3628800
            + r2 * (1.0 / 479001600 + r2 * (-1.0 / 87178291200 + r2 * (1.0 / 20922789888000))))))));
        switch ((int)(quadrant & 3))
        {
            case 0: sin = (float)s; cos = (float)c; break;
            case 1: sin = (float)c; cos = (float)-s; break;
            case 2: sin = (float)-s; cos = (float)-c; break;
            default: sin = (float)-c; cos = (float)s; break;
        }
    }

    /// <summary>One thread per stored element: cache[layer, slots[r], j] = keys/values[r, j].</summary>
    public static void StoreKv(Index1D index, ArrayView<float> keys, ArrayView<float> values, ArrayView<int> slots, int kvWidth,
        long layerStart, ArrayView<float> keyCache, ArrayView<float> valueCache)
    {
        int row = index / kvWidth;
        int column = index - row * kvWidth;
        long target = layerStart + (long)slots[row] * kvWidth + column;
        keyCache[target] = keys[index];
        valueCache[target] = values[index];
    }

    /// <summary>
    /// Attention step 1, one thread per (row, head, key t ≤ positions[r]): the scaled score, a dot product over the
    /// head dimension in order. Keys past the row's position are left unwritten and never read.
    /// </summary>
    public static void AttentionScores(Index1D index, ArrayView<float> queries, ArrayView<float> keyCache, ArrayView<int> positions,
        ArrayView<int> recent, int window, ArrayView<int> bases,
        long layerStart, int heads, int groupSize, int headDim, int kvWidth, int keyStride, float scale, ArrayView<float> scores)
    {
        int item = index / keyStride;
        int key = index - item * keyStride;
        int row = item / heads;
        if (key > positions[row])
            return;
        int head = item - row * heads;
        long queryStart = (long)item * headDim;
        long keyStart = layerStart + (long)KeySlot(key, positions[row], row, recent, window, bases) * kvWidth + (long)(head / groupSize) * headDim;
        float dot = 0f;
        for (int d = 0; d < headDim; d++)
            dot += queries[queryStart + d] * keyCache[keyStart + d];
        scores[index] = dot * scale;
    }

    /// <summary>
    /// The cache slot of the key at logical position <paramref name="key"/> for a row at <paramref name="position"/>: the
    /// row's window of recent slots, else the key's own position after its sequence's first slot (<paramref name="bases"/>,
    /// empty for one sequence).
    /// </summary>
    private static int KeySlot(int key, int position, int row, ArrayView<int> recent, int window, ArrayView<int> bases)
    {
        int back = position - key;
        if (back < window) return recent[(long)row * window + back];
        return bases.Length == 0 ? key : bases[row] + key;
    }

    /// <summary>
    /// Attention step 2, one thread per (row, head): softmax over keys 0..position in key order, in place. With a sliding
    /// window the keys before it get weight exactly 0, so the value sum's bits are those of a sum over the window alone
    /// (adding 0 · v changes no finite sum); the scores kernel stays within ILGPU's parameter limit.
    /// </summary>
    public static void AttentionSoftmax(Index1D item, ArrayView<int> positions, int heads, int keyStride, int slidingWindow, ArrayView<float> scores)
    {
        int keyCount = positions[item / heads] + 1;
        int first = slidingWindow > 0 ? Math.Max(0, keyCount - slidingWindow) : 0;
        long start = (long)item.X * keyStride;
        for (int t = 0; t < first; t++)
            scores[start + t] = 0f;
        float max = scores[start + first];
        for (int t = first + 1; t < keyCount; t++)
            max = MathF.Max(max, scores[start + t]);
        float sum = 0f;
        for (int t = first; t < keyCount; t++)
        {
            float e = MathF.Exp(scores[start + t] - max);
            scores[start + t] = e;
            sum += e;
        }
        for (int t = first; t < keyCount; t++)
            scores[start + t] = scores[start + t] / sum;
    }

    /// <summary>
    /// Attention step 3, one thread per output element (row, head, d): Σ_t p_t · value_t[d] in key order. Runs after
    /// the scores consumed the queries, so the output may be the query buffer.
    /// </summary>
    public static void AttentionValues(Index1D index, ArrayView<float> scores, ArrayView<float> valueCache, ArrayView<int> positions,
        ArrayView<int> recent, int window, ArrayView<int> bases,
        long layerStart, int heads, int groupSize, int headDim, int kvWidth, int keyStride, ArrayView<float> output)
    {
        int item = index / headDim;
        int d = index - item * headDim;
        int row = item / heads;
        int head = item - row * heads;
        int keyCount = positions[row] + 1;
        long scoreStart = (long)item * keyStride;
        long valueStart = layerStart + (long)(head / groupSize) * headDim + d;
        float sum = 0f;
        for (int t = 0; t < keyCount; t++)
            sum += scores[scoreStart + t] * valueCache[valueStart + (long)KeySlot(t, keyCount - 1, row, recent, window, bases) * kvWidth];
        output[index] = sum;
    }

    /// <summary>One thread per copied element: destination row destinationRows[r] = source row sourceRows[r].</summary>
    public static void CopyRows(Index1D index, ArrayView<float> source, ArrayView<int> sourceRows, ArrayView<float> destination,
        ArrayView<int> destinationRows, int width)
    {
        int r = index / width;
        int c = index - r * width;
        destination[(long)destinationRows[r] * width + c] = source[(long)sourceRows[r] * width + c];
    }

    /// <summary>One thread per element: silu(gate) · up.</summary>
    public static void SiluMul(Index1D index, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output)
    {
        float g = gate[index];
        output[index] = g / (1f + MathF.Exp(-g)) * up[index];
    }

    /// <summary>
    /// One thread per row: the first index of the maximum (lowest index on ties), and its softmax probability
    /// 1 / Σ exp(l − max) with the sum taken in index order.
    /// </summary>
    public static void ArgmaxWithProbability(Index1D row, ArrayView<float> logits, int vocab, ArrayView<int> tokens,
        ArrayView<float> probabilities)
    {
        long start = (long)row.X * vocab;
        int best = 0;
        float max = logits[start];
        for (int i = 1; i < vocab; i++)
        {
            float value = logits[start + i];
            if (value > max)
            {
                max = value;
                best = i;
            }
        }
        float sum = 0f;
        for (int i = 0; i < vocab; i++)
            sum += MathF.Exp(logits[start + i] - max);
        tokens[row] = best;
        probabilities[row] = 1f / sum;
    }
}
