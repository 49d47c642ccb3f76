using System.Numerics.Tensors;
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
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                break;
            case DType.BF16:
                BFloat16ToFloat32(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
        }
    }

    /// <summary>BF16 is the upper half of an IEEE F32: widening is exact.</summary>
    public static void BFloat16ToFloat32(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        Span<uint> bits = MemoryMarshal.Cast<float, uint>(destination[..source.Length]);
        TensorPrimitives.ShiftLeft(ConvertWiden(source, bits), 16, bits);
    }

    private static ReadOnlySpan<uint> ConvertWiden(ReadOnlySpan<ushort> source, Span<uint> destination)
    {
        TensorPrimitives.ConvertTruncating(source, destination);
        return destination;
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
