using Kangaroo.Cuda;
using Kangaroo.Weights;

namespace Kangaroo.Backends.Cuda;

internal sealed class CudaActivations(DeviceBuffer memory, int length) : ComputeBuffer(length)
{
    public DeviceBuffer Memory { get; } = memory;
    public override void Dispose() => Memory.Dispose();
}

/// <summary>
/// Indices on the device, with the host copy of the last upload (launch shapes and bounds checks need them). Uploads go
/// through a pinned staging buffer as stream-ordered copies, so a decode step never waits for the GPU to upload its
/// positions; the event guards the staging buffer until its previous copy has run.
/// </summary>
internal sealed class CudaIndices(DeviceBuffer memory, PinnedHostBuffer<int> staging, CudaEvent copied, int length) : IndexBuffer(length)
{
    public DeviceBuffer Memory { get; } = memory;
    public PinnedHostBuffer<int> Staging { get; } = staging;
    public CudaEvent Copied { get; } = copied;
    public int[] Host { get; } = new int[length];

    public override void Dispose()
    {
        Memory.Dispose();
        Staging.Dispose();
        Copied.Dispose();
    }
}

/// <param name="tiled">
/// Memory holds the tensor-core kernels' tile layout (matmul.cu, <see cref="Launchers.MatMulLauncher.PackIntoTiles"/>)
/// rather than rows. Only F16/BF16 matrices of more than one row are tiled, and only where the backend uses those kernels:
/// norm weights and rotary tables, one row each, are always rows.
/// </param>
internal sealed class CudaWeight(string name, DType dtype, int rows, int columns, DeviceBuffer memory, bool tiled = false)
    : WeightTensor(name, dtype, rows, columns)
{
    public DeviceBuffer Memory { get; } = memory;
    public bool Tiled { get; } = tiled;
    public override void Dispose() => Memory.Dispose();
}

/// <summary>
/// Keys and values, <c>[layer][slot][kvWidth]</c> each, in F16 (half the bytes of F32 for attention to read) or F32. Also
/// holds the attention kernels' per-key-block partial results, grown on demand (one cache belongs to one session).
/// </summary>
internal sealed class CudaKvCache(int layers, int capacity, int kvWidth, int sequences, DType dtype, DeviceBuffer keys, DeviceBuffer values)
    : KvCacheStorage(layers, capacity, kvWidth, sequences)
{
    public DType DType { get; } = dtype;
    public override int ElementBytes => DType.SizeInBytes();
    public DeviceBuffer Keys { get; } = keys;
    public DeviceBuffer Values { get; } = values;
    public DeviceBuffer? Partials { get; set; }
    /// <summary>Partials outgrown by later passes: recorded passes still point at them, so they live as long as the cache.</summary>
    public List<DeviceBuffer> RetiredPartials { get; } = [];
    /// <summary>MoveKvSlots' sources then destinations, uploaded per call.</summary>
    public IndexBuffer? Moves { get; set; }

    public long LayerOffset(int layer) => (long)layer * Slots * KvWidth;

    public override void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
        Partials?.Dispose();
        foreach (var retired in RetiredPartials) retired.Dispose();
        Moves?.Dispose();
    }
}
