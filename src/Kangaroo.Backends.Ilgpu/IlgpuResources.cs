using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Weights;

namespace Kangaroo.Backends.Ilgpu;

/// <summary>F32 activations in an accelerator buffer.</summary>
internal sealed class IlgpuComputeBuffer : ComputeBuffer
{
    private MemoryBuffer1D<float, Stride1D.Dense>? _memory;

    public IlgpuComputeBuffer(IlgpuBackend owner, Accelerator accelerator, int length) : base(length)
    {
        Owner = owner;
        // ILGPU rejects zero-length allocations on some accelerators; one spare element keeps every view valid.
        _memory = accelerator.Allocate1D<float>(Math.Max(length, 1));
    }

    public IlgpuBackend Owner { get; }

    public ArrayView<float> View => (_memory ?? throw new ObjectDisposedException(nameof(IlgpuComputeBuffer))).View;

    public override void Dispose()
    {
        _memory?.Dispose();
        _memory = null;
    }
}

/// <summary>
/// Int32 indices on the device, with a host copy of what was last uploaded: bounds checks (token ids, positions,
/// slots) read the shadow, so validating a call never waits on the device.
/// </summary>
internal sealed class IlgpuIndexBuffer : IndexBuffer
{
    private MemoryBuffer1D<int, Stride1D.Dense>? _memory;

    public IlgpuIndexBuffer(IlgpuBackend owner, Accelerator accelerator, int length) : base(length)
    {
        Owner = owner;
        _memory = accelerator.Allocate1D<int>(Math.Max(length, 1));
        HostShadow = new int[length];
    }

    public IlgpuBackend Owner { get; }

    public int[] HostShadow { get; }

    public ArrayView<int> View => (_memory ?? throw new ObjectDisposedException(nameof(IlgpuIndexBuffer))).View;

    public override void Dispose()
    {
        _memory?.Dispose();
        _memory = null;
    }
}

/// <summary>A weight's stored bytes copied to the device, padded to whole F32 words so both typed views are valid.</summary>
internal sealed class IlgpuWeightTensor : WeightTensor
{
    private MemoryBuffer1D<byte, Stride1D.Dense>? _bytes;

    public IlgpuWeightTensor(IlgpuBackend owner, string name, DType dtype, int rows, int columns, MemoryBuffer1D<byte, Stride1D.Dense> bytes)
        : base(name, dtype, rows, columns)
    {
        Owner = owner;
        _bytes = bytes;
    }

    public IlgpuBackend Owner { get; }

    public bool IsDisposed => _bytes is null;

    private ArrayView<byte> Bytes => (_bytes ?? throw new ObjectDisposedException($"weight \"{Name}\"")).View;

    public ArrayView<float> AsF32 => Bytes.Cast<float>();

    public ArrayView<ushort> As16 => Bytes.Cast<ushort>();

    public int DTypeCode => DType switch
    {
        DType.F32 => IlgpuKernels.F32,
        DType.F16 => IlgpuKernels.F16,
        DType.BF16 => IlgpuKernels.BF16,
        _ => throw new NotSupportedException($"weight dtype {DType}"),
    };

    public override void Dispose()
    {
        _bytes?.Dispose();
        _bytes = null;
    }
}

/// <summary>F32 keys and values, <c>[layers, sequences × capacity, kvWidth]</c> each.</summary>
internal sealed class IlgpuKvCache : KvCacheStorage
{
    private MemoryBuffer1D<float, Stride1D.Dense>? _keys;
    private MemoryBuffer1D<float, Stride1D.Dense>? _values;

    public IlgpuKvCache(IlgpuBackend owner, Accelerator accelerator, int layers, int capacity, int kvWidth, int sequences)
        : base(layers, capacity, kvWidth, sequences)
    {
        Owner = owner;
        long length = checked((long)layers * Slots * kvWidth);
        _keys = accelerator.Allocate1D<float>(length);
        _values = accelerator.Allocate1D<float>(length);
        // Fresh slots read as zeros rather than whatever the allocator left behind.
        _keys.MemSetToZero();
        _values.MemSetToZero();
    }

    public IlgpuBackend Owner { get; }

    public ArrayView<float> Keys => (_keys ?? throw new ObjectDisposedException(nameof(IlgpuKvCache))).View;

    public ArrayView<float> Values => (_values ?? throw new ObjectDisposedException(nameof(IlgpuKvCache))).View;

    public long LayerStart(int layer) => (long)layer * Slots * KvWidth;

    public override void Dispose()
    {
        _keys?.Dispose();
        _values?.Dispose();
        _keys = null;
        _values = null;
    }
}
