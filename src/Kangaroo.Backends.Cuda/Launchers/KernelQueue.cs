using Kangaroo.Cuda;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// What the launchers share with <see cref="CudaBackend"/>, which owns it: the one stream all work goes onto, the lock
/// that serializes its users, the compiled kernels, and device memory for the scratch buffers launchers grow on demand.
/// </summary>
internal sealed class KernelQueue(object gate, CudaContext context, CudaDevice device, CudaStream stream, CudaKernels kernels)
{
    /// <summary>Held around every launch, and around anything that must not interleave with another session's launches.</summary>
    public object Gate { get; } = gate;

    public CudaDevice Device { get; } = device;

    public CudaStream Stream { get; } = stream;

    public CudaKernels Kernels { get; } = kernels;

    /// <summary>True while <see cref="CudaBackend.Capture"/> records the stream; read and written under <see cref="Gate"/>.</summary>
    public bool Capturing { get; set; }

    /// <summary>Kernels run so far: launched directly, or replayed as part of a recorded graph (a replay counts each of its kernels).</summary>
    public long Launches { get; private set; }

    /// <summary>Kernels recorded since the current capture began; read and written under <see cref="Gate"/>.</summary>
    public int Recorded { get; private set; }

    public void Launch(CudaFunction function, Dim3 grid, Dim3 block, in LaunchArguments args)
    {
        lock (Gate)
        {
            args.Launch(function, Stream, grid, block);
            if (Capturing) Recorded++;
            else Launches++;
        }
    }

    /// <summary>Starts counting the kernels of a capture (<see cref="Recorded"/>).</summary>
    public void BeginRecording()
    {
        lock (Gate) { Capturing = true; Recorded = 0; }
    }

    /// <summary>Counts a replay of recorded work of <paramref name="kernels"/> kernels.</summary>
    public void Replayed(int kernels)
    {
        lock (Gate) Launches += kernels;
    }

    public DeviceBuffer Allocate(long bytes, string what)
    {
        try
        {
            return DeviceBuffer.Allocate(context, Math.Max(bytes, 4));
        }
        catch (CudaException e)
        {
            var (free, total) = context.MemoryInfo();
            throw new KangarooException($"out of GPU memory for {what}: asked {bytes:N0} bytes, {free:N0} of {total:N0} free ({e.Message})", e);
        }
    }
}
