using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Weights;

namespace Kangaroo.Backends.Cpu;

/// <summary>
/// y[r, o] = Σ_i x[r, i] · W[o, i] on the CPU: four weight rows against one or two input rows per pass, the weights
/// widened to F32 in registers as they are read (F16 and BF16 need no converted copy), eight accumulators.
/// <para>
/// Row invariance: every output element is one accumulator vector over the blocks of <see cref="Vector{T}"/> from
/// element 0 (fused multiply-add where the hardware has it), then <see cref="Vector.Sum{T}(Vector{T})"/>, then the
/// scalar tail in order. That order depends on the row's width only: not on how many rows or weight rows share a pass,
/// nor on whether the weights were widened in registers or read from a converted tile, since widening is exact.
/// </para>
/// </summary>
internal static class CpuMatMul
{
    /// <summary>Weight rows per pass.</summary>
    public const int WeightRowsPerPass = 4;

    /// <summary>
    /// Outputs [featureStart, featureEnd) of rows [0, rows). One or two input rows widen the weights in registers;
    /// more rows widen each group of four weight rows once into <paramref name="tile"/> (4 · columns floats) and
    /// run the F32 pass over it for every pair of rows.
    /// </summary>
    public static unsafe void Range(ReadOnlySpan<float> input, CpuWeightTensor weight, Span<float> output, int rows, int featureStart,
        int featureEnd, Span<float> tile)
    {
        int columns = weight.Columns;
        int outFeatures = weight.Rows;
        for (int f0 = featureStart; f0 < featureEnd; f0 += WeightRowsPerPass)
        {
            int count = Math.Min(WeightRowsPerPass, featureEnd - f0);
            if (rows <= 2 || weight.DType == DType.F32)
            {
                // Missing weight rows of the last group repeat the first (their sums are computed and dropped).
                var w = new WeightRows(weight, f0, count);
                switch (weight.DType)
                {
                    case DType.F32: Pass<Float32Row>(input, rows, columns, w, output, outFeatures, f0, count); break;
                    case DType.F16: Pass<HalfRow>(input, rows, columns, w, output, outFeatures, f0, count); break;
                    case DType.BF16: Pass<BFloat16Row>(input, rows, columns, w, output, outFeatures, f0, count); break;
                    default: throw new ArgumentOutOfRangeException(nameof(weight), weight.DType, null);
                }
            }
            else
            {
                for (int t = 0; t < count; t++)
                    weight.RowAsFloat32(f0 + t, tile.Slice(t * columns, columns));
                fixed (float* converted = tile)
                {
                    var w = new WeightRows((byte*)converted, columns * sizeof(float), count);
                    Pass<Float32Row>(input, rows, columns, w, output, outFeatures, f0, count);
                }
            }
        }
    }

    private static void Pass<TRow>(ReadOnlySpan<float> input, int rows, int columns, WeightRows w, Span<float> output, int outFeatures,
        int f0, int count) where TRow : struct, IWeightRow
    {
        for (int r = 0; r < rows; r += 2)
        {
            ref float x0 = ref MemoryMarshal.GetReference(input.Slice(r * columns, columns));
            if (r + 1 < rows)
            {
                ref float x1 = ref MemoryMarshal.GetReference(input.Slice((r + 1) * columns, columns));
                Span<float> y0 = output.Slice(r * outFeatures + f0, count), y1 = output.Slice((r + 1) * outFeatures + f0, count);
                TwoRows<TRow>(ref x0, ref x1, columns, w, y0, y1);
            }
            else
            {
                OneRow<TRow>(ref x0, columns, w, output.Slice(r * outFeatures + f0, count));
            }
        }
    }

    private static unsafe void OneRow<TRow>(ref float x, int columns, WeightRows w, Span<float> y) where TRow : struct, IWeightRow
    {
        int width = Vector<float>.Count;
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= columns - 2 * width; i += 2 * width)
            {
                if ((i & 31) == 0) PrefetchNextGroup<TRow>(w, i);
                Vector<float> xl = Load(ref x, i), xh = Load(ref x, i + width);
                TRow.LoadPair(w.Row0, i, out var l, out var h); a0 = Fma(h, xh, Fma(l, xl, a0));
                TRow.LoadPair(w.Row1, i, out l, out h); a1 = Fma(h, xh, Fma(l, xl, a1));
                TRow.LoadPair(w.Row2, i, out l, out h); a2 = Fma(h, xh, Fma(l, xl, a2));
                TRow.LoadPair(w.Row3, i, out l, out h); a3 = Fma(h, xh, Fma(l, xl, a3));
            }
            if (i <= columns - width)
            {
                Vector<float> xl = Load(ref x, i);
                a0 = Fma(TRow.LoadOne(w.Row0, i), xl, a0);
                a1 = Fma(TRow.LoadOne(w.Row1, i), xl, a1);
                a2 = Fma(TRow.LoadOne(w.Row2, i), xl, a2);
                a3 = Fma(TRow.LoadOne(w.Row3, i), xl, a3);
                i += width;
            }
        }
        float s0 = Vector.Sum(a0), s1 = Vector.Sum(a1), s2 = Vector.Sum(a2), s3 = Vector.Sum(a3);
        for (; i < columns; i++)
        {
            float xi = Unsafe.Add(ref x, i);
            s0 = float.MultiplyAddEstimate(xi, TRow.Scalar(w.Row0, i), s0);
            s1 = float.MultiplyAddEstimate(xi, TRow.Scalar(w.Row1, i), s1);
            s2 = float.MultiplyAddEstimate(xi, TRow.Scalar(w.Row2, i), s2);
            s3 = float.MultiplyAddEstimate(xi, TRow.Scalar(w.Row3, i), s3);
        }
        Store(y, s0, s1, s2, s3);
    }

    private static void TwoRows<TRow>(ref float x, ref float z, int columns, WeightRows w, Span<float> y0, Span<float> y1) where TRow : struct, IWeightRow
    {
        int width = Vector<float>.Count;
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= columns - 2 * width; i += 2 * width)
            {
                if ((i & 31) == 0) PrefetchNextGroup<TRow>(w, i);
                Vector<float> xl = Load(ref x, i), xh = Load(ref x, i + width), zl = Load(ref z, i), zh = Load(ref z, i + width);
                TRow.LoadPair(w.Row0, i, out var l, out var h); a0 = Fma(h, xh, Fma(l, xl, a0)); b0 = Fma(h, zh, Fma(l, zl, b0));
                TRow.LoadPair(w.Row1, i, out l, out h); a1 = Fma(h, xh, Fma(l, xl, a1)); b1 = Fma(h, zh, Fma(l, zl, b1));
                TRow.LoadPair(w.Row2, i, out l, out h); a2 = Fma(h, xh, Fma(l, xl, a2)); b2 = Fma(h, zh, Fma(l, zl, b2));
                TRow.LoadPair(w.Row3, i, out l, out h); a3 = Fma(h, xh, Fma(l, xl, a3)); b3 = Fma(h, zh, Fma(l, zl, b3));
            }
            if (i <= columns - width)
            {
                Vector<float> xl = Load(ref x, i), zl = Load(ref z, i);
                Vector<float> w0 = TRow.LoadOne(w.Row0, i), w1 = TRow.LoadOne(w.Row1, i), w2 = TRow.LoadOne(w.Row2, i), w3 = TRow.LoadOne(w.Row3, i);
                a0 = Fma(w0, xl, a0); a1 = Fma(w1, xl, a1); a2 = Fma(w2, xl, a2); a3 = Fma(w3, xl, a3);
                b0 = Fma(w0, zl, b0); b1 = Fma(w1, zl, b1); b2 = Fma(w2, zl, b2); b3 = Fma(w3, zl, b3);
                i += width;
            }
        }
        float s0 = Vector.Sum(a0), s1 = Vector.Sum(a1), s2 = Vector.Sum(a2), s3 = Vector.Sum(a3);
        float t0 = Vector.Sum(b0), t1 = Vector.Sum(b1), t2 = Vector.Sum(b2), t3 = Vector.Sum(b3);
        for (; i < columns; i++)
        {
            float xi = Unsafe.Add(ref x, i), zi = Unsafe.Add(ref z, i);
            float v0 = TRow.Scalar(w.Row0, i), v1 = TRow.Scalar(w.Row1, i), v2 = TRow.Scalar(w.Row2, i), v3 = TRow.Scalar(w.Row3, i);
            s0 = float.MultiplyAddEstimate(xi, v0, s0); s1 = float.MultiplyAddEstimate(xi, v1, s1);
            s2 = float.MultiplyAddEstimate(xi, v2, s2); s3 = float.MultiplyAddEstimate(xi, v3, s3);
            t0 = float.MultiplyAddEstimate(zi, v0, t0); t1 = float.MultiplyAddEstimate(zi, v1, t1);
            t2 = float.MultiplyAddEstimate(zi, v2, t2); t3 = float.MultiplyAddEstimate(zi, v3, t3);
        }
        Store(y0, s0, s1, s2, s3);
        Store(y1, t0, t1, t2, t3);
    }

    // Four rows read in lockstep are four streams 1/4 group apart; on a matrix larger than the caches the hardware
    // prefetcher alone fell behind (bench/RESULTS.md: the LM head at one row). So the next group's rows are requested one
    // group ahead, a cache line of each row every 32 elements. Tiles widened into L1 have no next group to fetch.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PrefetchNextGroup<TRow>(WeightRows w, int index) where TRow : struct, IWeightRow
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported || w.GroupBytes == 0) return;
        nint offset = w.GroupBytes + (nint)index * TRow.ElementBytes;
        System.Runtime.Intrinsics.X86.Sse.Prefetch0((void*)(w.Row0 + offset));
        System.Runtime.Intrinsics.X86.Sse.Prefetch0((void*)(w.Row1 + offset));
        System.Runtime.Intrinsics.X86.Sse.Prefetch0((void*)(w.Row2 + offset));
        System.Runtime.Intrinsics.X86.Sse.Prefetch0((void*)(w.Row3 + offset));
    }

    private static void Store(Span<float> y, float s0, float s1, float s2, float s3)
    {
        y[0] = s0;
        if (y.Length > 1) y[1] = s1;
        if (y.Length > 2) y[2] = s2;
        if (y.Length > 3) y[3] = s3;
    }

    // x · w + a: the same operation as CpuKernels.Dot's, so each product rounds once where the hardware fuses.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Fma(Vector<float> w, Vector<float> x, Vector<float> a) => Vector.MultiplyAddEstimate(x, w, a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Load(ref float start, int index) => Vector.LoadUnsafe(ref start, (nuint)index);

    /// <summary>
    /// Four weight rows' start addresses (a missing row repeats the first), and how far ahead the next group of the same
    /// matrix starts (0: none to prefetch).
    /// </summary>
    private readonly unsafe struct WeightRows
    {
        public readonly nint Row0, Row1, Row2, Row3;
        public readonly nint GroupBytes;

        public WeightRows(CpuWeightTensor weight, int first, int count)
            : this(weight.RowPointer(first), weight.RowByteLength, count)
        {
            if (first + 2 * WeightRowsPerPass <= weight.Rows) GroupBytes = (nint)weight.RowByteLength * WeightRowsPerPass;
        }

        public WeightRows(byte* first, int rowBytes, int count)
        {
            GroupBytes = 0;
            Row0 = (nint)first;
            Row1 = count > 1 ? (nint)(first + rowBytes) : Row0;
            Row2 = count > 2 ? (nint)(first + 2L * rowBytes) : Row0;
            Row3 = count > 3 ? (nint)(first + 3L * rowBytes) : Row0;
        }
    }

    /// <summary>Reads a stored weight row as F32, exactly, in vectors (two at a time or one) and single elements.</summary>
    private interface IWeightRow
    {
        static abstract void LoadPair(nint row, int index, out Vector<float> low, out Vector<float> high);
        static abstract Vector<float> LoadOne(nint row, int index);
        static abstract float Scalar(nint row, int index);
        static abstract int ElementBytes { get; }
    }

    // Half a vector of 16-bit weights: widened one by one into a vector (a row's tail, at most once per row).
    private static Vector<float> FromScalars<TRow>(nint row, int index) where TRow : struct, IWeightRow
    {
        Span<float> lanes = stackalloc float[Vector<float>.Count];
        for (int i = 0; i < lanes.Length; i++) lanes[i] = TRow.Scalar(row, index + i);
        return new Vector<float>(lanes);
    }

    private readonly unsafe struct Float32Row : IWeightRow
    {
        public static void LoadPair(nint row, int index, out Vector<float> low, out Vector<float> high)
        {
            low = Vector.Load((float*)row + index);
            high = Vector.Load((float*)row + index + Vector<float>.Count);
        }

        public static Vector<float> LoadOne(nint row, int index) => Vector.Load((float*)row + index);

        public static float Scalar(nint row, int index) => ((float*)row)[index];
        public static int ElementBytes => 4;
    }

    private readonly unsafe struct HalfRow : IWeightRow
    {
        public static void LoadPair(nint row, int index, out Vector<float> low, out Vector<float> high)
        {
            Vector.Widen(Vector.Load((ushort*)row + index), out Vector<uint> l, out Vector<uint> h);
            low = Vector.AsVectorSingle(DTypeConversion.HalfBitsToSingleBits(l));
            high = Vector.AsVectorSingle(DTypeConversion.HalfBitsToSingleBits(h));
        }

        public static Vector<float> LoadOne(nint row, int index) => FromScalars<HalfRow>(row, index);

        public static float Scalar(nint row, int index) => (float)BitConverter.UInt16BitsToHalf(((ushort*)row)[index]);
        public static int ElementBytes => 2;
    }

    private readonly unsafe struct BFloat16Row : IWeightRow
    {
        public static void LoadPair(nint row, int index, out Vector<float> low, out Vector<float> high)
        {
            Vector.Widen(Vector.Load((ushort*)row + index), out Vector<uint> l, out Vector<uint> h);
            low = Vector.AsVectorSingle(l << 16);
            high = Vector.AsVectorSingle(h << 16);
        }

        public static Vector<float> LoadOne(nint row, int index) => FromScalars<BFloat16Row>(row, index);

        public static float Scalar(nint row, int index) => DTypeConversion.BFloat16ToFloat32(((ushort*)row)[index]);
        public static int ElementBytes => 2;
    }
}
