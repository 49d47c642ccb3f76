using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>Which calls other threads may make while a stream captures (CUstreamCaptureMode).</summary>
public enum CudaCaptureMode
{
    /// <summary>Unsafe calls (cuMemAlloc, synchronous copies, ...) fail on every thread during the capture.</summary>
    Global = 0,

    /// <summary>Unsafe calls fail only on the capturing thread. The usual choice.</summary>
    ThreadLocal = 1,

    /// <summary>No checks.</summary>
    Relaxed = 2,
}

/// <summary>
/// CUDA graphs by stream capture: everything queued on a stream between <see cref="BeginCapture"/> and
/// <see cref="EndCapture"/> is recorded rather than run, then instantiated once and replayed with one launch,
/// which removes the per-kernel CPU launch cost of a decode step.
/// </summary>
public static class CudaGraph
{
    public static void BeginCapture(CudaStream stream, CudaCaptureMode mode = CudaCaptureMode.ThreadLocal)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CudaErrors.Check(Driver.cuStreamBeginCapture_v2(stream.Prepare(), (int)mode), "cuStreamBeginCapture_v2");
    }

    /// <summary>Ends the capture and instantiates what was recorded. The recorded graph itself is not kept.</summary>
    public static unsafe CudaGraphExec EndCapture(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        nint graph;
        CudaErrors.Check(Driver.cuStreamEndCapture(stream.Prepare(), &graph), "cuStreamEndCapture");
        try
        {
            nint exec;
            CudaErrors.Check(Driver.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags");
            return new CudaGraphExec(stream.Context, CudaHandle.ForObject(CudaHandleKind.GraphExec, exec, stream.Context.Handle));
        }
        finally
        {
            // The executable graph is independent of its template once instantiated.
            Driver.cuGraphDestroy(graph);
        }
    }
}

/// <summary>An instantiated graph, replayable on any stream of its context.</summary>
public sealed class CudaGraphExec : IDisposable
{
    internal CudaGraphExec(CudaContext context, CudaHandle handle)
    {
        Context = context;
        Handle = handle;
    }

    public CudaContext Context { get; }

    internal CudaHandle Handle { get; }

    /// <summary>Queues one replay of the whole graph. Launches of the same graph are serialised by the driver.</summary>
    public void Launch(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Handle.ThrowIfClosed(this);
        CudaErrors.Check(Driver.cuGraphLaunch(Handle.Value, stream.Prepare()), "cuGraphLaunch");
    }

    public void Dispose() => Handle.Dispose();
}
