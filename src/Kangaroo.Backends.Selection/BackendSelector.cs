using Kangaroo.Backends.Cpu;
using Kangaroo.Backends.Cuda;

namespace Kangaroo.Backends;

/// <summary>One backend on one device, and whether it can run here (and why not).</summary>
public sealed record BackendCandidate(string Backend, string Device, bool IsAvailable, string? Reason);

/// <summary>The backend picked, and why each better one was passed over.</summary>
public sealed record BackendChoice(IComputeBackend Backend, IReadOnlyList<string> FallbackReasons);

/// <summary>
/// Backend selection for the CLI and for embedding applications: <c>auto</c> takes the hand-written CUDA backend when the
/// driver and NVRTC work, else a GPU through ILGPU, else the managed CPU backend — and says why it fell back.
/// </summary>
public static class BackendSelector
{
    public static readonly string[] Names = ["auto", "cuda", "cpu"];

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
                return new BackendChoice(new CpuBackend(cpuThreads), reasons);
            default:
                throw new InvalidRequestException($"unknown backend '{name}' (available: {string.Join(", ", Names)})");
        }
    }
}
