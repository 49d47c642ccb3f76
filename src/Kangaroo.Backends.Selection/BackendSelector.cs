using Kangaroo.Backends.Cpu;
using Kangaroo.Backends.Cuda;
using Kangaroo.Backends.Ilgpu;

namespace Kangaroo.Backends;

/// <summary>One backend on one device, and whether it can run here (and why not).</summary>
public sealed record BackendCandidate(string Backend, string Device, bool IsAvailable, string? Reason);

/// <summary>The backend picked, and why each better one was passed over.</summary>
public sealed record BackendChoice(IComputeBackend Backend, IReadOnlyList<string> FallbackReasons);

/// <summary>
/// Backend selection for the CLI and for embedding applications: <c>auto</c> takes the hand-written CUDA backend when the
/// driver and NVRTC work, else a GPU through ILGPU (CUDA, then OpenCL), else the managed CPU backend — and says why it fell
/// back. <c>ilgpu</c> asks for ILGPU explicitly (its CPU accelerator where no GPU is usable).
/// </summary>
public static class BackendSelector
{
    public static readonly string[] Names = ["auto", "cuda", "ilgpu", "cpu"];

    /// <summary>Every backend and device with available / not available and why; never throws.</summary>
    public static IReadOnlyList<BackendCandidate> Survey()
    {
        var list = new List<BackendCandidate>();
        if (CudaBackend.IsAvailable(out string? reason))
        {
            try
            {
                int count = Kangaroo.Cuda.CudaDevice.Count;
                for (int i = 0; i < count; i++)
                {
                    var device = Kangaroo.Cuda.CudaDevice.Get(i);
                    list.Add(new BackendCandidate("cuda", $"{i}: {device.Name} (sm_{device.ComputeCapability.Major}{device.ComputeCapability.Minor}, {device.TotalMemoryBytes / (1L << 30)} GiB)", true, null));
                }
            }
            catch (Exception e)
            {
                list.Add(new BackendCandidate("cuda", "-", false, e.Message));
            }
        }
        else
        {
            list.Add(new BackendCandidate("cuda", "-", false, reason));
        }
        foreach (var device in IlgpuBackend.Describe())
            list.Add(new BackendCandidate("ilgpu", device.Available ? $"{device.Kind}[{device.Index}]: {device.Name}" : device.Kind.ToString(),
                device.Available, device.Reason));
        list.Add(new BackendCandidate("cpu", $"{Environment.ProcessorCount} threads", true, null));
        return list;
    }

    /// <summary>Creates the backend <paramref name="name"/> (auto, cuda, cpu); an unavailable explicit choice is an error naming the reason.</summary>
    public static BackendChoice Create(string name, int? cpuThreads = null)
    {
        switch (name)
        {
            case "cpu":
                return new BackendChoice(new CpuBackend(cpuThreads), []);
            case "cuda":
                return new BackendChoice(new CudaBackend(), []);
            case "ilgpu":
                // ILGPU on a GPU where there is one, else its CPU accelerator (slow; mainly for tests).
                return new BackendChoice(IlgpuBackend.CreateBest(), []);
            case "auto":
                var reasons = new List<string>();
                if (CudaBackend.IsAvailable(out string? why))
                {
                    try
                    {
                        return new BackendChoice(new CudaBackend(), reasons);
                    }
                    catch (Exception e) when (e is KangarooException or Kangaroo.Cuda.CudaException or Kangaroo.Cuda.NvrtcException)
                    {
                        why = e.Message;
                    }
                }
                reasons.Add($"cuda: {why}");
                foreach (var kind in new[] { IlgpuAcceleratorKind.Cuda, IlgpuAcceleratorKind.OpenCL })
                {
                    if (IlgpuBackend.Available(kind, out string? ilgpuWhy))
                    {
                        try
                        {
                            return new BackendChoice(new IlgpuBackend(kind), reasons);
                        }
                        catch (Exception e) when (e is not OutOfMemoryException)
                        {
                            ilgpuWhy = e.Message;
                        }
                    }
                    reasons.Add($"ilgpu {kind}: {ilgpuWhy}");
                }
                return new BackendChoice(new CpuBackend(cpuThreads), reasons);
            default:
                throw new InvalidRequestException($"unknown backend '{name}' (available: {string.Join(", ", Names)})");
        }
    }
}
