namespace Kangaroo.Weights;

/// <summary>
/// A read-only view of one tensor's raw little-endian bytes inside a memory-mapped weight file.
/// Valid while the <see cref="WeightStore"/> (or <see cref="SafeTensorsFile"/>) that produced it is alive.
/// </summary>
public readonly unsafe struct TensorView
{
    private readonly byte* _data;

    internal TensorView(string name, string filePath, DType dtype, int[] shape, byte* data, long byteLength)
    {
        Name = name;
        FilePath = filePath;
        DType = dtype;
        Shape = shape;
        _data = data;
        ByteLength = byteLength;
    }

    public string Name { get; }
    /// <summary>The file the tensor was read from (for error messages).</summary>
    public string FilePath { get; }
    public DType DType { get; }
    public IReadOnlyList<int> Shape { get; }
    public long ByteLength { get; }
    public long ElementCount => ByteLength / DType.SizeInBytes();

    /// <summary>Pointer to the first byte; stays valid while the owning file is open.</summary>
    public byte* Pointer => _data;

    /// <summary>The raw bytes. Only for tensors under 2 GiB; larger ones must be read through <see cref="Pointer"/>.</summary>
    public ReadOnlySpan<byte> Bytes => new(_data, checked((int)ByteLength));

    /// <summary>Copies the tensor into <paramref name="destination"/> converted to F32.</summary>
    public void CopyToFloat32(Span<float> destination) => DTypeConversion.ToFloat32(DType, Bytes, destination);

    public float[] ToFloat32Array()
    {
        var result = new float[checked((int)ElementCount)];
        CopyToFloat32(result);
        return result;
    }

    /// <summary>The index of the first NaN or infinite element, or −1 (reads through <see cref="Pointer"/>: any size).</summary>
    public long FirstNonFinite()
    {
        long count = ElementCount;
        switch (DType)
        {
            case DType.F32:
                var words = (uint*)_data;
                for (long i = 0; i < count; i++) if ((words[i] & 0x7F80_0000u) == 0x7F80_0000u) return i;
                return -1;
            case DType.F16:
                var halves = (ushort*)_data;
                for (long i = 0; i < count; i++) if ((halves[i] & 0x7C00) == 0x7C00) return i;
                return -1;
            case DType.BF16:
                var brains = (ushort*)_data;
                for (long i = 0; i < count; i++) if ((brains[i] & 0x7F80) == 0x7F80) return i;
                return -1;
            default:
                return -1;
        }
    }

    public override string ToString() => $"{Name} {DType}[{string.Join(", ", Shape)}]";
}
