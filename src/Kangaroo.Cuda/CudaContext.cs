using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>
/// A device's primary context (the one the CUDA runtime also uses), retained for the life of this object.
/// Dispose releases this retain; the driver tears the context down when the last retain goes, and objects
/// created in it (buffers, streams, modules, ...) keep it retained until they are disposed or finalized.
/// </summary>
/// <remarks>
/// A context is current per thread. Every wrapper makes its context current on the calling thread before it
/// calls the driver, so callers normally never need <see cref="MakeCurrent"/>; it exists for code that hands
/// the thread to other CUDA users, and it always calls cuCtxSetCurrent.
/// </remarks>
public sealed class CudaContext : IDisposable
{
    private CudaContext(CudaDevice device, CudaHandle handle)
    {
        Device = device;
        Handle = handle;
    }

    /// <summary>Retains the primary context of <paramref name="device"/> and makes it current on this thread.</summary>
    public static unsafe CudaContext Primary(CudaDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        CudaRuntime.EnsureInitialized();
        nint context;
        CudaErrors.Check(Driver.cuDevicePrimaryCtxRetain(&context, device.Handle), $"cuDevicePrimaryCtxRetain(device {device.Ordinal})");
        var result = new CudaContext(device, CudaHandle.ForPrimaryContext(context, device.Handle));
        result.MakeCurrent();
        return result;
    }

    public CudaDevice Device { get; }

    internal CudaHandle Handle { get; }

    /// <summary>Makes this context current on the calling thread (cuCtxSetCurrent).</summary>
    public void MakeCurrent()
    {
        Handle.ThrowIfClosed(this);
        CurrentContext.Set(Handle.Value);
    }

    /// <summary>Blocks until all work in the context is done; asynchronous kernel faults surface here.</summary>
    public void Synchronize()
    {
        EnsureCurrent();
        CudaErrors.Check(Driver.cuCtxSynchronize(), "cuCtxSynchronize");
    }

    /// <summary>Free and total device memory in bytes, as the driver sees them now.</summary>
    public unsafe (long Free, long Total) MemoryInfo()
    {
        EnsureCurrent();
        nuint free, total;
        CudaErrors.Check(Driver.cuMemGetInfo_v2(&free, &total), "cuMemGetInfo_v2");
        return ((long)free, (long)total);
    }

    /// <summary>Best effort memory info for error messages: never throws.</summary>
    internal unsafe (long Free, long Total)? TryMemoryInfo()
    {
        nuint free, total;
        return Driver.cuMemGetInfo_v2(&free, &total) == CudaErrors.Success ? ((long)free, (long)total) : null;
    }

    /// <summary>Cheap when this context is already current on the thread (see <see cref="CurrentContext"/>).</summary>
    internal void EnsureCurrent()
    {
        Handle.ThrowIfClosed(this);
        CurrentContext.Ensure(Handle);
    }

    public void Dispose() => Handle.Dispose();

    public override string ToString() => $"primary context of device {Device.Ordinal} ({Device.Name})";
}
