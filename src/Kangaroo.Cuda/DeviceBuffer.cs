using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>
/// Device memory (cuMemAlloc). The device address is internal: kernels receive a buffer through
/// <see cref="KernelArguments.Add(DeviceBuffer, long)"/>, and only the CUDA backend (a friend assembly) sees
/// <see cref="DevicePointer"/>. Offsets and lengths are in bytes and checked against <see cref="ByteLength"/>.
/// </summary>
/// <remarks>
/// The synchronous methods run on the legacy default stream and return when the operation has completed
/// (the driver makes DtoD copies and memsets asynchronous to the host, and HtoD from pageable memory may return
/// before the DMA ends, so they wait for the legacy stream afterwards). They do not wait for work queued on
/// <see cref="CudaStream"/>s, which are non-blocking: synchronize the stream that last wrote a buffer before a
/// synchronous copy reads it, or use the asynchronous overloads on that stream. Asynchronous copies take a <see cref="PinnedHostBuffer{T}"/> rather than
/// any span: the driver reads host memory after the call returns, so it must be memory the GC can neither move
/// nor free, and page-locked memory is also what lets the copy actually overlap.
/// </remarks>
public sealed class DeviceBuffer : IDisposable
{
    private DeviceBuffer(CudaContext context, CudaHandle handle, long byteLength)
    {
        Context = context;
        Handle = handle;
        ByteLength = byteLength;
    }

    /// <summary>Allocates <paramref name="byteLength"/> bytes (uninitialised). 256-byte aligned, as every cuMemAlloc.</summary>
    public static unsafe DeviceBuffer Allocate(CudaContext context, long byteLength)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(byteLength);
        context.EnsureCurrent();
        ulong pointer;
        int result = Driver.cuMemAlloc_v2(&pointer, (nuint)byteLength);
        if (result != CudaErrors.Success)
            ThrowAllocationFailure(context, result, byteLength);
        return new DeviceBuffer(context, CudaHandle.ForObject(CudaHandleKind.DeviceMemory, (nint)pointer, context.Handle), byteLength);
    }

    public CudaContext Context { get; }

    public long ByteLength { get; }

    internal CudaHandle Handle { get; }

    /// <summary>The CUdeviceptr, for friend assemblies that build kernel arguments or sub-views themselves.</summary>
    internal ulong DevicePointer
    {
        get
        {
            Handle.ThrowIfClosed(this);
            return (ulong)Handle.Value;
        }
    }

    public bool IsDisposed => Handle.IsClosed;

    /// <summary>Copies host data into the buffer at <paramref name="destinationOffsetBytes"/>; returns when done.</summary>
    public unsafe void CopyFrom<T>(ReadOnlySpan<T> source, long destinationOffsetBytes = 0) where T : unmanaged
    {
        long bytes = (long)source.Length * sizeof(T);
        ulong destination = Prepare(destinationOffsetBytes, bytes);
        if (bytes == 0)
            return;
        fixed (T* pointer = source)
            CudaErrors.Check(Driver.cuMemcpyHtoD_v2(destination, pointer, (nuint)bytes), "cuMemcpyHtoD_v2");
        WaitForLegacyStream("cuMemcpyHtoD_v2");
    }

    /// <summary>Copies from the buffer at <paramref name="sourceOffsetBytes"/> into host memory; returns when done.</summary>
    public unsafe void CopyTo<T>(Span<T> destination, long sourceOffsetBytes = 0) where T : unmanaged
    {
        long bytes = (long)destination.Length * sizeof(T);
        ulong source = Prepare(sourceOffsetBytes, bytes);
        if (bytes == 0)
            return;
        fixed (T* pointer = destination)
            CudaErrors.Check(Driver.cuMemcpyDtoH_v2(pointer, source, (nuint)bytes), "cuMemcpyDtoH_v2");
    }

    /// <summary>Queues a copy of <paramref name="count"/> elements of <paramref name="source"/> (from <paramref name="sourceIndex"/>) on <paramref name="stream"/>.</summary>
    /// <param name="count">Elements to copy; -1 means the rest of <paramref name="source"/>.</param>
    public unsafe void CopyFromAsync<T>(PinnedHostBuffer<T> source, CudaStream stream, long destinationOffsetBytes = 0, int sourceIndex = 0, int count = -1)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(stream);
        void* host = source.ElementPointer(sourceIndex, ref count);
        CopyFromHostAsync(host, (long)count * sizeof(T), destinationOffsetBytes, stream);
    }

    /// <summary>Queues a copy from the buffer into <paramref name="destination"/> on <paramref name="stream"/>; read it after the stream synchronises.</summary>
    /// <param name="count">Elements to copy; -1 means the rest of <paramref name="destination"/>.</param>
    public unsafe void CopyToAsync<T>(PinnedHostBuffer<T> destination, CudaStream stream, long sourceOffsetBytes = 0, int destinationIndex = 0, int count = -1)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(stream);
        void* host = destination.ElementPointer(destinationIndex, ref count);
        CopyToHostAsync(host, (long)count * sizeof(T), sourceOffsetBytes, stream);
    }

    /// <summary>Raw asynchronous upload for friend assemblies; <paramref name="host"/> must stay valid and unmoved until the stream passes this point.</summary>
    internal unsafe void CopyFromHostAsync(void* host, long bytes, long destinationOffsetBytes, CudaStream stream)
    {
        ulong destination = Prepare(destinationOffsetBytes, bytes);
        nint s = stream.Prepare();
        if (bytes != 0)
            CudaErrors.Check(Driver.cuMemcpyHtoDAsync_v2(destination, host, (nuint)bytes, s), "cuMemcpyHtoDAsync_v2");
    }

    /// <summary>Raw asynchronous download for friend assemblies; <paramref name="host"/> must stay valid and unmoved until the stream passes this point.</summary>
    internal unsafe void CopyToHostAsync(void* host, long bytes, long sourceOffsetBytes, CudaStream stream)
    {
        ulong source = Prepare(sourceOffsetBytes, bytes);
        nint s = stream.Prepare();
        if (bytes != 0)
            CudaErrors.Check(Driver.cuMemcpyDtoHAsync_v2(host, source, (nuint)bytes, s), "cuMemcpyDtoHAsync_v2");
    }

    /// <summary>Copies <paramref name="byteCount"/> bytes from another device buffer; returns when done.</summary>
    /// <param name="byteCount">Bytes to copy; -1 means all of <paramref name="source"/> after <paramref name="sourceOffsetBytes"/>.</param>
    public void CopyFromDevice(DeviceBuffer source, long byteCount = -1, long sourceOffsetBytes = 0, long destinationOffsetBytes = 0)
    {
        var (destination, from, bytes) = PrepareDeviceCopy(source, byteCount, sourceOffsetBytes, destinationOffsetBytes);
        if (bytes != 0)
        {
            CudaErrors.Check(Driver.cuMemcpyDtoD_v2(destination, from, (nuint)bytes), "cuMemcpyDtoD_v2");
            WaitForLegacyStream("cuMemcpyDtoD_v2");
        }
    }

    /// <summary>Queues a device-to-device copy on <paramref name="stream"/>.</summary>
    public void CopyFromDeviceAsync(DeviceBuffer source, CudaStream stream, long byteCount = -1, long sourceOffsetBytes = 0, long destinationOffsetBytes = 0)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (destination, from, bytes) = PrepareDeviceCopy(source, byteCount, sourceOffsetBytes, destinationOffsetBytes);
        nint s = stream.Prepare();
        if (bytes != 0)
            CudaErrors.Check(Driver.cuMemcpyDtoDAsync_v2(destination, from, (nuint)bytes, s), "cuMemcpyDtoDAsync_v2");
    }

    /// <summary>Sets every 32-bit word of the buffer to <paramref name="value"/> (e.g. the bits of a float); on <paramref name="stream"/> if given, else synchronously.</summary>
    public void Memset32(uint value, CudaStream? stream = null) => Memset32(value, 0, ByteLength / 4, stream);

    /// <summary>Sets <paramref name="count"/> 32-bit words from <paramref name="byteOffset"/> (4-byte aligned).</summary>
    public void Memset32(uint value, long byteOffset, long count, CudaStream? stream = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (byteOffset % 4 != 0)
            throw new ArgumentException($"a 32-bit memset needs a 4-byte aligned offset, got {byteOffset}", nameof(byteOffset));
        ulong destination = Prepare(byteOffset, count * 4);
        if (count == 0)
            return;
        int result = stream is null
            ? Driver.cuMemsetD32_v2(destination, value, (nuint)count)
            : Driver.cuMemsetD32Async(destination, value, (nuint)count, stream.Prepare());
        CudaErrors.Check(result, stream is null ? "cuMemsetD32_v2" : "cuMemsetD32Async");
        if (stream is null)
            WaitForLegacyStream("cuMemsetD32_v2");
    }

    /// <summary>Sets every byte of the buffer to <paramref name="value"/>; on <paramref name="stream"/> if given, else synchronously.</summary>
    public void Memset8(byte value, CudaStream? stream = null) => Memset8(value, 0, ByteLength, stream);

    public void Memset8(byte value, long byteOffset, long count, CudaStream? stream = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ulong destination = Prepare(byteOffset, count);
        if (count == 0)
            return;
        int result = stream is null
            ? Driver.cuMemsetD8_v2(destination, value, (nuint)count)
            : Driver.cuMemsetD8Async(destination, value, (nuint)count, stream.Prepare());
        CudaErrors.Check(result, stream is null ? "cuMemsetD8_v2" : "cuMemsetD8Async");
        if (stream is null)
            WaitForLegacyStream("cuMemsetD8_v2");
    }

    public void Dispose() => Handle.Dispose();

    public override string ToString() => $"DeviceBuffer({ByteLength} bytes)";

    /// <summary>Disposed check, range check, context current; the device address of <paramref name="offset"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Prepare(long offset, long bytes)
    {
        Handle.ThrowIfClosed(this);
        if ((ulong)offset > (ulong)ByteLength || (ulong)bytes > (ulong)(ByteLength - offset))
            ThrowRange(offset, bytes);
        Context.EnsureCurrent();
        return (ulong)Handle.Value + (ulong)offset;
    }

    private (ulong Destination, ulong Source, long Bytes) PrepareDeviceCopy(DeviceBuffer source, long byteCount, long sourceOffset, long destinationOffset)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (byteCount < 0)
            byteCount = source.ByteLength - sourceOffset;
        ulong from = source.Prepare(sourceOffset, byteCount);
        ulong destination = Prepare(destinationOffset, byteCount);
        return (destination, from, byteCount);
    }

    /// <summary>Makes a "synchronous" driver call really complete before returning (see the class remarks).</summary>
    private static void WaitForLegacyStream(string call)
    {
        int result = Driver.cuStreamSynchronize(0); // 0 = the legacy default stream
        if (result != CudaErrors.Success)
            CudaErrors.Throw(result, $"cuStreamSynchronize(legacy stream) after {call}");
    }

    private void ThrowRange(long offset, long bytes) =>
        throw new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, {offset} + {bytes}) lies outside the {ByteLength}-byte device buffer");

    private static void ThrowAllocationFailure(CudaContext context, int result, long byteLength)
    {
        string? detail = null;
        if (result == CudaErrors.OutOfMemory)
        {
            // Say what was asked and what the device had, so "out of memory" can be told from fragmentation.
            detail = context.TryMemoryInfo() is var (free, total)
                ? $"requested {CudaErrors.FormatBytes(byteLength)}; {CudaErrors.FormatBytes(free)} free of {CudaErrors.FormatBytes(total)} on device {context.Device.Ordinal} ({context.Device.Name})"
                : $"requested {CudaErrors.FormatBytes(byteLength)}; free memory unknown";
        }
        throw new CudaException($"cuMemAlloc_v2({byteLength} bytes)", result, detail);
    }
}
