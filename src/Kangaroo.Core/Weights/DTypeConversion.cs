using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kangaroo.Weights;

/// <summary>Conversions between stored element types and F32 (vectorized where the hardware allows).</summary>
public static class DTypeConversion
{
    public static void ToFloat32(DType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        int count = source.Length / dtype.SizeInBytes();
        if (destination.Length < count)
            throw new ArgumentException($"destination holds {destination.Length} elements, {count} needed", nameof(destination));
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case DType.F16:
                HalfToFloat32(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            case DType.BF16:
                BFloat16ToFloat32(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
        }
    }

    /// <summary>
    /// IEEE half → single, exact for every input (subnormals, ±0, ±∞, NaN payloads). Integer bit moves plus
    /// one float subtraction on normal values, after F. Giesen's "half_to_float_fast5"; about four times the
    /// throughput of TensorPrimitives.ConvertToSingle(Half), which matters because F16 MatMul streams every
    /// weight through this once.
    /// </summary>
    public static void HalfToFloat32(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        Debug.Assert(destination.Length >= source.Length);
        ref ushort from = ref MemoryMarshal.GetReference(source);
        ref uint to = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int length = source.Length;
        int width = Vector<ushort>.Count;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= length - width; i += width)
            {
                Vector.Widen(Vector.LoadUnsafe(ref from, (nuint)i), out Vector<uint> low, out Vector<uint> high);
                HalfBitsToSingleBits(low).StoreUnsafe(ref to, (nuint)i);
                HalfBitsToSingleBits(high).StoreUnsafe(ref to, (nuint)(i + width / 2));
            }
        }
        for (; i < length; i++)
            Unsafe.Add(ref to, i) = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(Unsafe.Add(ref from, i)));
    }

    /// <summary>Half bits (one per 32-bit lane) → single bits, exactly: the vector step of <see cref="HalfToFloat32"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<uint> HalfBitsToSingleBits(Vector<uint> half)
    {
        const uint ExponentMask = 0x7C00u << 13;           // the half exponent, moved to its single position
        const uint ExponentAdjust = (127u - 15u) << 23;     // rebias 15 → 127
        Vector<uint> magnitude = (half & new Vector<uint>(0x7FFFu)) << 13;
        Vector<uint> exponent = magnitude & new Vector<uint>(ExponentMask);
        Vector<uint> bits = magnitude + new Vector<uint>(ExponentAdjust);
        // ∞/NaN: push the exponent on to all ones.
        bits = Vector.ConditionalSelect(Vector.Equals(exponent, new Vector<uint>(ExponentMask)), bits + new Vector<uint>(ExponentAdjust), bits);
        // Zero/subnormal: give it the smallest normal exponent, then subtract that implicit one in float
        // arithmetic, which renormalizes exactly (all operands are normal, so no denormal slow path).
        Vector<float> renormalized = Vector.AsVectorSingle(bits + new Vector<uint>(1u << 23)) - Vector.AsVectorSingle(new Vector<uint>(113u << 23));
        bits = Vector.ConditionalSelect(Vector.Equals(exponent, Vector<uint>.Zero), Vector.AsVectorUInt32(renormalized), bits);
        return bits | ((half & new Vector<uint>(0x8000u)) << 16);
    }

    /// <summary>BF16 is the upper half of an F32: widen to 32 bits and shift, in one pass.</summary>
    public static void BFloat16ToFloat32(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        Debug.Assert(destination.Length >= source.Length);
        ref ushort from = ref MemoryMarshal.GetReference(source);
        ref uint to = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int length = source.Length;
        int width = Vector<ushort>.Count;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= length - width; i += width)
            {
                Vector.Widen(Vector.LoadUnsafe(ref from, (nuint)i), out Vector<uint> low, out Vector<uint> high);
                (low << 16).StoreUnsafe(ref to, (nuint)i);
                (high << 16).StoreUnsafe(ref to, (nuint)(i + width / 2));
            }
        }
        for (; i < length; i++)
            Unsafe.Add(ref to, i) = (uint)Unsafe.Add(ref from, i) << 16;
    }


    /// <summary>Round-to-nearest-even F32 → BF16 (NaN stays NaN), as PyTorch does.</summary>
    public static ushort Float32ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }

    public static float BFloat16ToFloat32(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    /// <summary>Converts F32 values to the bytes of <paramref name="dtype"/> (used by writers and tests).</summary>
    public static byte[] FromFloat32(DType dtype, ReadOnlySpan<float> source)
    {
        var bytes = new byte[source.Length * dtype.SizeInBytes()];
        FromFloat32(dtype, source, bytes);
        return bytes;
    }

    /// <summary>
    /// Converts F32 values into <paramref name="destination"/> as <paramref name="dtype"/> (F16/BF16 round to nearest
    /// even), without allocating: streaming writers convert chunk by chunk into their output buffer.
    /// </summary>
    public static void FromFloat32(DType dtype, ReadOnlySpan<float> source, Span<byte> destination)
    {
        int needed = source.Length * dtype.SizeInBytes();
        if (destination.Length < needed)
            throw new ArgumentException($"destination holds {destination.Length} bytes, {needed} needed", nameof(destination));
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<byte, Half>(destination[..needed]));
                break;
            case DType.BF16:
                Float32ToBFloat16(source, MemoryMarshal.Cast<byte, ushort>(destination[..needed]));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
        }
    }

    /// <summary>Round-to-nearest-even F32 → BF16 for a span (<paramref name="destination"/> at least as long as <paramref name="source"/>).</summary>
    public static void Float32ToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        destination = destination[..source.Length];
        for (int i = 0; i < source.Length; i++) destination[i] = Float32ToBFloat16(source[i]);
    }
}
