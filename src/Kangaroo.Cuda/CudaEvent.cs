using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>A CUDA event: a marker in a stream, for timing and for cross-stream ordering.</summary>
public sealed class CudaEvent : IDisposable
{
    private CudaEvent(CudaContext context, CudaHandle handle, bool timing)
    {
        Context = context;
        Handle = handle;
        HasTiming = timing;
    }

    /// <param name="context">The context the event belongs to.</param>
    /// <param name="enableTiming">False makes the event cheaper to record (CU_EVENT_DISABLE_TIMING) when it only orders work.</param>
    public static unsafe CudaEvent Create(CudaContext context, bool enableTiming = true)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.EnsureCurrent();
        nint cudaEvent;
        uint flags = enableTiming ? Driver.CU_EVENT_DEFAULT : Driver.CU_EVENT_DISABLE_TIMING;
        CudaErrors.Check(Driver.cuEventCreate(&cudaEvent, flags), "cuEventCreate");
        return new CudaEvent(context, CudaHandle.ForObject(CudaHandleKind.Event, cudaEvent, context.Handle), enableTiming);
    }

    public CudaContext Context { get; }

    public bool HasTiming { get; }

    internal CudaHandle Handle { get; }

    internal nint Prepare()
    {
        Handle.ThrowIfClosed(this);
        Context.EnsureCurrent();
        return Handle.Value;
    }

    /// <summary>Records the event at the current end of <paramref name="stream"/>.</summary>
    public void Record(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CudaErrors.Check(Driver.cuEventRecord(Prepare(), stream.Prepare()), "cuEventRecord");
    }

    /// <summary>Blocks until the work before the recorded point is done.</summary>
    public void Synchronize() => CudaErrors.Check(Driver.cuEventSynchronize(Prepare()), "cuEventSynchronize");

    /// <summary>GPU time between two recorded, completed events (about 0.5 µs resolution).</summary>
    public static unsafe float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        if (!start.HasTiming || !end.HasTiming)
            throw new InvalidOperationException("both events must be created with timing enabled");
        float milliseconds;
        CudaErrors.Check(Driver.cuEventElapsedTime(&milliseconds, start.Prepare(), end.Prepare()), "cuEventElapsedTime");
        return milliseconds;
    }

    public void Dispose() => Handle.Dispose();
}
