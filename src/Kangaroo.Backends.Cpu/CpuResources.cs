using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Weights;

namespace Kangaroo.Backends.Cpu;

/// <summary>F32 activations in a managed array (activations never approach 2^31 elements).</summary>
internal sealed class CpuComputeBuffer : ComputeBuffer
{
    private float[]? _data;

    public CpuComputeBuffer(int length) : base(length) => _data = GC.AllocateUninitializedArray<float>(length);

    public float[] Data => _data ?? throw new ObjectDisposedException(nameof(ComputeBuffer));

    public override void Dispose() => _data = null;
}

internal sealed class CpuIndexBuffer : IndexBuffer
{
    private int[]? _data;

    public CpuIndexBuffer(int length) : base(length) => _data = GC.AllocateUninitializedArray<int>(length);

    public int[] Data => _data ?? throw new ObjectDisposedException(nameof(IndexBuffer));

    public override void Dispose() => _data = null;
}

/// <summary>
/// A weight matrix read in place: either a view into the memory-mapped model file (never copied) or a pinned
/// array owned by this object (engine-computed weights). Rows are addressed with 64-bit offsets because an
/// F32 LM head can exceed 2 GiB.
/// </summary>
internal sealed unsafe class CpuWeightTensor : WeightTensor
{
    private readonly byte* _data;
    // Keeps an owned copy alive (and pinned, so _data stays valid); null for file views.
    private float[]? _owned;
    private bool _disposed;

    public CpuWeightTensor(string name, DType dtype, int rows, int columns, byte* data)
        : base(name, dtype, rows, columns) => _data = data;

    public CpuWeightTensor(string name, ReadOnlySpan<float> values, int rows, int columns)
        : base(name, DType.F32, rows, columns)
    {
        _owned = GC.AllocateUninitializedArray<float>(values.Length, pinned: true);
        values.CopyTo(_owned);
        _data = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_owned));
    }

    public int RowByteLength => Columns * DType.SizeInBytes();

    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public byte* RowPointer(int row) => _data + (long)row * RowByteLength;

    public ReadOnlySpan<byte> RowBytes(int row) =>
        new(_data + (long)row * RowByteLength, RowByteLength);

    /// <summary>Row <paramref name="row"/> as F32: the stored values themselves when F32, else converted into <paramref name="scratch"/>.</summary>
    public ReadOnlySpan<float> RowAsFloat32(int row, Span<float> scratch)
    {
        if (DType == DType.F32)
            return new ReadOnlySpan<float>(_data + (long)row * RowByteLength, Columns);
        Span<float> destination = scratch[..Columns];
        CpuKernels.ConvertToFloat32(DType, RowBytes(row), destination);
        return destination;
    }

    public override void Dispose()
    {
        _disposed = true;
        _owned = null;
    }
}

/// <summary>
/// Keys and values as F32 in native memory, layout <c>[layer][slot][kvWidth]</c> for each. Native because a
/// 32k-position cache of a large model exceeds the 2^31-element limit of a managed array.
/// </summary>
internal sealed unsafe class CpuKvCache : KvCacheStorage
{
    private float* _keys;
    private float* _values;

    public CpuKvCache(int layers, int capacity, int kvWidth, int sequences) : base(layers, capacity, kvWidth, sequences)
    {
        nuint bytes = checked((nuint)layers * (nuint)Slots * (nuint)kvWidth * sizeof(float));
        // 64-byte alignment: a cache line, and a full vector on every x64/Arm64 SIMD width.
        _keys = (float*)NativeMemory.AlignedAlloc(Math.Max(bytes, 1), 64);
        _values = (float*)NativeMemory.AlignedAlloc(Math.Max(bytes, 1), 64);
        GC.AddMemoryPressure(checked((long)bytes * 2));
        PressureBytes = (long)bytes * 2;
    }

    private long PressureBytes { get; }

    private long RowOffset(int layer, int slot) => ((long)layer * Slots + slot) * KvWidth;

    public float* KeyRow(int layer, int slot)
    {
        ObjectDisposedException.ThrowIf(_keys == null, this);
        return _keys + RowOffset(layer, slot);
    }

    public float* ValueRow(int layer, int slot)
    {
        ObjectDisposedException.ThrowIf(_values == null, this);
        return _values + RowOffset(layer, slot);
    }

    public override void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~CpuKvCache() => Free();

    private void Free()
    {
        float* keys = _keys, values = _values;
        _keys = null;
        _values = null;
        if (keys == null) return;
        NativeMemory.AlignedFree(keys);
        NativeMemory.AlignedFree(values);
        GC.RemoveMemoryPressure(PressureBytes);
    }
}
