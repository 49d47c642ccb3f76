using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Weights;

namespace Kangaroo.Backends.Cpu;

/// <summary>
/// Vector kernels whose result bits depend only on the values (and their index within the span), never on
/// the span's address or on where a caller's batch ends.
/// <para>
/// Why not TensorPrimitives throughout: its elementwise transcendentals compute spans shorter than a vector
/// with the scalar function, which rounds differently from the vector one (measured: TensorPrimitives.Exp gives
/// other bits for about half the elements of a 3-element call than for the same values in an 8-element call),
/// so a value's result would depend on where the call ends. Here elementwise tails are padded into a full
/// vector, so every element goes through the same vector code. Reductions are blocked from element 0 with
/// unaligned loads: TensorPrimitives.Dot/Sum happen not to depend on the address today, but that is not part of
/// their contract, and row invariance must not rest on an implementation detail of another library.
/// Elementwise arithmetic (add, multiply, divide) rounds identically in any lane, so those use TensorPrimitives.
/// </para>
/// </summary>
internal static class CpuKernels
{
    /// <summary>Σ x[i]·y[i]: four vector accumulators over blocks from element 0, then a scalar tail.</summary>
    public static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        Debug.Assert(x.Length == y.Length);
        ref float xStart = ref MemoryMarshal.GetReference(x);
        ref float yStart = ref MemoryMarshal.GetReference(y);
        int length = x.Length;
        int i = 0;
        float sum = 0f;
        int width = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated && length >= width)
        {
            Vector<float> sum0 = Vector<float>.Zero, sum1 = Vector<float>.Zero, sum2 = Vector<float>.Zero, sum3 = Vector<float>.Zero;
            for (; i <= length - 4 * width; i += 4 * width)
            {
                sum0 = Vector.MultiplyAddEstimate(Load(ref xStart, i), Load(ref yStart, i), sum0);
                sum1 = Vector.MultiplyAddEstimate(Load(ref xStart, i + width), Load(ref yStart, i + width), sum1);
                sum2 = Vector.MultiplyAddEstimate(Load(ref xStart, i + 2 * width), Load(ref yStart, i + 2 * width), sum2);
                sum3 = Vector.MultiplyAddEstimate(Load(ref xStart, i + 3 * width), Load(ref yStart, i + 3 * width), sum3);
            }
            for (; i <= length - width; i += width)
                sum0 = Vector.MultiplyAddEstimate(Load(ref xStart, i), Load(ref yStart, i), sum0);
            sum = Vector.Sum((sum0 + sum1) + (sum2 + sum3));
        }
        for (; i < length; i++)
            sum = float.MultiplyAddEstimate(Unsafe.Add(ref xStart, i), Unsafe.Add(ref yStart, i), sum);
        return sum;
    }

    /// <summary>Σ x[i], blocked like <see cref="Dot"/>.</summary>
    public static float Sum(ReadOnlySpan<float> x)
    {
        ref float start = ref MemoryMarshal.GetReference(x);
        int length = x.Length;
        int i = 0;
        float sum = 0f;
        int width = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated && length >= width)
        {
            Vector<float> sum0 = Vector<float>.Zero, sum1 = Vector<float>.Zero, sum2 = Vector<float>.Zero, sum3 = Vector<float>.Zero;
            for (; i <= length - 4 * width; i += 4 * width)
            {
                sum0 += Load(ref start, i);
                sum1 += Load(ref start, i + width);
                sum2 += Load(ref start, i + 2 * width);
                sum3 += Load(ref start, i + 3 * width);
            }
            for (; i <= length - width; i += width)
                sum0 += Load(ref start, i);
            sum = Vector.Sum((sum0 + sum1) + (sum2 + sum3));
        }
        for (; i < length; i++)
            sum += Unsafe.Add(ref start, i);
        return sum;
    }

    /// <summary>destination[i] = exp(x[i] − offset). <paramref name="destination"/> may be <paramref name="x"/>.</summary>
    public static void ExpOfDifference(ReadOnlySpan<float> x, float offset, Span<float> destination)
    {
        Debug.Assert(destination.Length >= x.Length);
        ref float source = ref MemoryMarshal.GetReference(x);
        ref float target = ref MemoryMarshal.GetReference(destination);
        var offsets = new Vector<float>(offset);
        int length = x.Length;
        int width = Vector<float>.Count;
        int i = 0;
        for (; i <= length - width; i += width)
            Vector.Exp(Load(ref source, i) - offsets).StoreUnsafe(ref target, (nuint)i);
        if (i < length)
        {
            Span<float> lanes = stackalloc float[width];
            lanes.Clear();
            x[i..].CopyTo(lanes);
            Vector.Exp(new Vector<float>(lanes) - offsets).CopyTo(lanes);
            lanes[..(length - i)].CopyTo(destination[i..]);
        }
    }

    /// <summary>
    /// destination[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + exp(−g)). <paramref name="destination"/> may be
    /// either input.
    /// </summary>
    public static void SiluMultiply(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        Debug.Assert(up.Length >= gate.Length && destination.Length >= gate.Length);
        ref float gates = ref MemoryMarshal.GetReference(gate);
        ref float ups = ref MemoryMarshal.GetReference(up);
        ref float target = ref MemoryMarshal.GetReference(destination);
        int length = gate.Length;
        int width = Vector<float>.Count;
        int i = 0;
        for (; i <= length - width; i += width)
            SiluMultiply(Load(ref gates, i), Load(ref ups, i)).StoreUnsafe(ref target, (nuint)i);
        if (i < length)
        {
            int tail = length - i;
            Span<float> gateLanes = stackalloc float[width];
            Span<float> upLanes = stackalloc float[width];
            gateLanes.Clear();
            upLanes.Clear();
            gate.Slice(i, tail).CopyTo(gateLanes);
            up.Slice(i, tail).CopyTo(upLanes);
            SiluMultiply(new Vector<float>(gateLanes), new Vector<float>(upLanes)).CopyTo(gateLanes);
            gateLanes[..tail].CopyTo(destination[i..]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> SiluMultiply(Vector<float> gate, Vector<float> up) =>
        gate / (Vector<float>.One + Vector.Exp(-gate)) * up;

    /// <summary>accumulator[i] += x[i] · scale (fused where the hardware has FMA, in vector and tail alike).</summary>
    public static void MultiplyAdd(ReadOnlySpan<float> x, float scale, Span<float> accumulator)
    {
        Debug.Assert(accumulator.Length >= x.Length);
        ref float source = ref MemoryMarshal.GetReference(x);
        ref float target = ref MemoryMarshal.GetReference(accumulator);
        var scales = new Vector<float>(scale);
        int length = x.Length;
        int width = Vector<float>.Count;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= length - width; i += width)
                Vector.MultiplyAddEstimate(Load(ref source, i), scales, Load(ref target, i)).StoreUnsafe(ref target, (nuint)i);
        }
        for (; i < length; i++)
            Unsafe.Add(ref target, i) = float.MultiplyAddEstimate(Unsafe.Add(ref source, i), scale, Unsafe.Add(ref target, i));
    }

    /// <summary>Widens stored weights to F32 (exact for F16 and BF16): <see cref="DTypeConversion.ToFloat32"/>.</summary>
    public static void ConvertToFloat32(DType dtype, ReadOnlySpan<byte> source, Span<float> destination) =>
        DTypeConversion.ToFloat32(dtype, source, destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Load(ref float start, int index) => Vector.LoadUnsafe(ref start, (nuint)index);
}

/// <summary>
/// Per-thread scratch, grown on demand and then reused, so that steady-state ops do not allocate. Each purpose
/// has its own array because one op may hold two at once (e.g. a converted weight and a table).
/// </summary>
internal static class CpuScratch
{
    [ThreadStatic] private static float[]? t_weightRows;
    [ThreadStatic] private static float[]? t_weightVector;
    [ThreadStatic] private static float[]? t_table;

    /// <summary>Converted weight rows of a MatMul tile.</summary>
    public static Span<float> WeightRows(int length) => Rent(ref t_weightRows, length);

    /// <summary>A converted weight vector (norm weight, inverse frequencies).</summary>
    public static Span<float> WeightVector(int length) => Rent(ref t_weightVector, length);

    /// <summary>Attention scores over the keys, rotary cos/sin tables.</summary>
    public static Span<float> Table(int length) => Rent(ref t_table, length);

    private static Span<float> Rent(ref float[]? slot, int length)
    {
        float[]? array = slot;
        if (array is null || array.Length < length)
        {
            // Geometric growth: attention scores grow one key per decode step, so reallocate O(log n) times.
            int size = array is null ? length : (int)Math.Clamp(2L * array.Length, length, Array.MaxLength);
            slot = array = new float[size];
        }
        return array.AsSpan(0, length);
    }
}
