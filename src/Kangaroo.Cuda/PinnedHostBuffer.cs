using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>
/// Page-locked host memory (cuMemAllocHost): the GPU reads and writes it by DMA, so asynchronous copies overlap
/// with compute and run at full PCIe/NVLink speed. Use it for staging, not bulk storage: pinning reduces the
/// memory the OS can page.
/// </summary>
public sealed unsafe class PinnedHostBuffer<T> : IDisposable where T : unmanaged
{
    private PinnedHostBuffer(CudaContext context, CudaHandle handle, int length)
    {
        Context = context;
        Handle = handle;
        Length = length;
    }

    /// <summary>Allocates <paramref name="length"/> elements (uninitialised).</summary>
    public static PinnedHostBuffer<T> Allocate(CudaContext context, int length)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        context.EnsureCurrent();
        long bytes = (long)length * sizeof(T);
        void* pointer;
        int result = Driver.cuMemAllocHost_v2(&pointer, (nuint)bytes);
        if (result != CudaErrors.Success)
            throw new CudaException($"cuMemAllocHost_v2({bytes} bytes)", result);
        return new PinnedHostBuffer<T>(context, CudaHandle.ForObject(CudaHandleKind.HostMemory, (nint)pointer, context.Handle), length);
    }

    public CudaContext Context { get; }

    public int Length { get; }

    public long ByteLength => (long)Length * sizeof(T);

    internal CudaHandle Handle { get; }

    /// <summary>The memory as a span; valid until Dispose.</summary>
    public Span<T> Span
    {
        get
        {
            Handle.ThrowIfClosed(this);
            return new Span<T>((void*)Handle.Value, Length);
        }
    }

    /// <summary>Address of element <paramref name="index"/>; <paramref name="count"/> -1 becomes "the rest". Range-checked.</summary>
    internal void* ElementPointer(int index, ref int count)
    {
        Handle.ThrowIfClosed(this);
        if (count < 0)
            count = Length - index;
        if ((uint)index > (uint)Length || (uint)count > (uint)(Length - index))
            throw new ArgumentOutOfRangeException(nameof(index), $"elements [{index}, {index} + {count}) lie outside the {Length}-element pinned buffer");
        return (T*)Handle.Value + index;
    }

    public void Dispose() => Handle.Dispose();
}
