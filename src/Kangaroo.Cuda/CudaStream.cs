using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>
/// A non-blocking stream (CU_STREAM_NON_BLOCKING): it does not synchronise with the legacy default stream, so
/// nothing outside this engine that uses stream 0 can serialise it.
/// </summary>
public sealed class CudaStream : IDisposable
{
    private CudaStream(CudaContext context, CudaHandle handle)
    {
        Context = context;
        Handle = handle;
    }

    public static unsafe CudaStream Create(CudaContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.EnsureCurrent();
        nint stream;
        CudaErrors.Check(Driver.cuStreamCreate(&stream, Driver.CU_STREAM_NON_BLOCKING), "cuStreamCreate(CU_STREAM_NON_BLOCKING)");
        return new CudaStream(context, CudaHandle.ForObject(CudaHandleKind.Stream, stream, context.Handle));
    }

    public CudaContext Context { get; }

    internal CudaHandle Handle { get; }

    /// <summary>The CUstream after the disposed check and with the context current: what every stream-ordered call needs.</summary>
    internal nint Prepare()
    {
        Handle.ThrowIfClosed(this);
        Context.EnsureCurrent();
        return Handle.Value;
    }

    /// <summary>Blocks until everything queued on the stream is done; asynchronous kernel faults surface here.</summary>
    public void Synchronize() => CudaErrors.Check(Driver.cuStreamSynchronize(Prepare()), "cuStreamSynchronize");

    /// <summary>Makes later work on this stream wait for <paramref name="cudaEvent"/> (no host blocking).</summary>
    public void Wait(CudaEvent cudaEvent)
    {
        ArgumentNullException.ThrowIfNull(cudaEvent);
        CudaErrors.Check(Driver.cuStreamWaitEvent(Prepare(), cudaEvent.Prepare(), 0), "cuStreamWaitEvent");
    }

    public void Dispose() => Handle.Dispose();
}
