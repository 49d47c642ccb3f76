using System.Runtime.InteropServices;

namespace Kangaroo.Cuda.Interop;

/// <summary>What a <see cref="CudaHandle"/> owns, which decides how it is released.</summary>
internal enum CudaHandleKind
{
    PrimaryContext,
    DeviceMemory,
    HostMemory,
    Module,
    Stream,
    Event,
    GraphExec,
}

/// <summary>
/// One SafeHandle type for every driver object. Objects created in a context hold a reference
/// (<see cref="SafeHandle.DangerousAddRef"/>) on the context's handle, so the primary context is released only
/// after the last buffer, stream, module, event and graph in it is gone, whatever order Dispose or the finalizer
/// runs them in. Release makes the context current on the releasing thread (the finalizer thread included),
/// because cuModuleUnload and friends act on the current context.
/// </summary>
internal sealed class CudaHandle : SafeHandle
{
    private readonly CudaHandle? _context;
    private readonly int _device;

    private CudaHandle(CudaHandleKind kind, nint value, CudaHandle? context, int device) : base(0, ownsHandle: true)
    {
        Kind = kind;
        _context = context;
        _device = device;
        if (context is not null)
        {
            bool added = false;
            context.DangerousAddRef(ref added);
        }
        SetHandle(value);
    }

    public CudaHandleKind Kind { get; }

    public override bool IsInvalid => handle == 0;

    /// <summary>The raw value; callers check <see cref="SafeHandle.IsClosed"/> first (see ThrowIfClosed).</summary>
    public nint Value => handle;

    /// <summary>The context this object lives in (itself for a context).</summary>
    public CudaHandle Context => _context ?? this;

    /// <summary>Wraps a retained primary context; release is cuDevicePrimaryCtxRelease_v2 on <paramref name="device"/>.</summary>
    public static CudaHandle ForPrimaryContext(nint context, int device) => new(CudaHandleKind.PrimaryContext, context, null, device);

    /// <summary>Wraps an object created in <paramref name="context"/>; the context stays alive until it is released.</summary>
    public static CudaHandle ForObject(CudaHandleKind kind, nint value, CudaHandle context) => new(kind, value, context, -1);

    protected override unsafe bool ReleaseHandle()
    {
        if (Kind == CudaHandleKind.PrimaryContext)
        {
            return Driver.cuDevicePrimaryCtxRelease_v2(_device) == CudaErrors.Success;
        }

        var context = _context!;
        int result;
        try
        {
            // Not the cached path: the releasing thread may be the finalizer, where no cache entry can be trusted.
            result = Driver.cuCtxSetCurrent(context.handle);
            if (result == CudaErrors.Success)
            {
                result = Kind switch
                {
                    CudaHandleKind.DeviceMemory => Driver.cuMemFree_v2((ulong)handle),
                    CudaHandleKind.HostMemory => Driver.cuMemFreeHost((void*)handle),
                    CudaHandleKind.Module => Driver.cuModuleUnload(handle),
                    CudaHandleKind.Stream => Driver.cuStreamDestroy_v2(handle),
                    CudaHandleKind.Event => Driver.cuEventDestroy_v2(handle),
                    CudaHandleKind.GraphExec => Driver.cuGraphExecDestroy(handle),
                    _ => CudaErrors.Success,
                };
            }
        }
        finally
        {
            context.DangerousRelease();
        }
        // A failure here (e.g. a sticky launch error poisoning the context) cannot be thrown from Dispose or a
        // finalizer usefully; false reports it to the runtime's diagnostics and nothing leaks further.
        return result == CudaErrors.Success;
    }

    /// <summary>Throws ObjectDisposedException for a closed handle; <paramref name="owner"/> names the wrapper.</summary>
    public void ThrowIfClosed(object owner) => ObjectDisposedException.ThrowIf(IsClosed, owner);
}

/// <summary>
/// Makes a context current on the calling thread when it is not already. It asks the driver every time
/// (cuCtxGetCurrent, a few tens of nanoseconds) instead of trusting a per-thread record: other code in the process
/// switches contexts behind the binding's back — ILGPU's CUDA accelerator makes its own context current on whatever
/// pool thread it runs, and destroys it later — and a stale record then sent our calls to a destroyed context.
/// </summary>
internal static class CurrentContext
{
    public static unsafe void Ensure(CudaHandle context)
    {
        var value = context.Value;
        nint current;
        if (Driver.cuCtxGetCurrent(&current) != CudaErrors.Success || current != value)
            Set(value);
    }

    public static void Set(nint context) => CudaErrors.Check(Driver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
}
