using Kangaroo.Cuda;
using Kangaroo.Weights;

namespace Kangaroo.Backends.Cuda;

internal sealed class CudaActivations(DeviceBuffer memory, int length) : ComputeBuffer(length)
{
    public DeviceBuffer Memory { get; } = memory;
    public override void Dispose() => Memory.Dispose();
}

/// <summary>Indices on the device, with the host copy of the last upload: launch shapes and bounds checks need them.</summary>
internal sealed class CudaIndices(DeviceBuffer memory, int length) : IndexBuffer(length)
{
    public DeviceBuffer Memory { get; } = memory;
    public int[] Host { get; } = new int[length];
    public override void Dispose() => Memory.Dispose();
}

internal sealed class CudaWeight(string name, DType dtype, int rows, int columns, DeviceBuffer memory) : WeightTensor(name, dtype, rows, columns)
{
    public DeviceBuffer Memory { get; } = memory;
    public override void Dispose() => Memory.Dispose();
}

/// <summary>
/// Keys and values in F16, <c>[layer][slot][kvWidth]</c> each: half the bytes of F32 for attention to read. Also holds the
/// attention kernels' per-key-block partial results, grown on demand (one cache belongs to one session).
/// </summary>
internal sealed class CudaKvCache(int layers, int capacity, int kvWidth, DeviceBuffer keys, DeviceBuffer values)
    : KvCacheStorage(layers, capacity, kvWidth)
{
    public DeviceBuffer Keys { get; } = keys;
    public DeviceBuffer Values { get; } = values;
    public DeviceBuffer? Partials { get; set; }

    public long LayerOffset(int layer) => (long)layer * Capacity * KvWidth;

    public override void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
        Partials?.Dispose();
    }
}
