using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>What the driver probe found. <see cref="Reason"/> is set exactly when <see cref="IsAvailable"/> is false.</summary>
/// <param name="DriverVersion">The driver's CUDA version as cuDriverGetVersion reports it (12080 = 12.8); 0 if unknown.</param>
public sealed record CudaDriverStatus(bool IsAvailable, string? Reason, int DriverVersion, int DeviceCount)
{
    /// <summary>"12.8" from 12080.</summary>
    public string DriverVersionText => DriverVersion <= 0 ? "unknown" : $"{DriverVersion / 1000}.{DriverVersion % 1000 / 10}";
}

/// <summary>What the NVRTC probe found. <see cref="Reason"/> is set exactly when <see cref="IsAvailable"/> is false.</summary>
public sealed record NvrtcStatus(bool IsAvailable, string? Reason, int Major, int Minor, string? LibraryName)
{
    public string VersionText => $"{Major}.{Minor}";
}

/// <summary>
/// Entry point for deciding whether CUDA can be used. Probing never throws: a machine without a driver, without
/// a GPU or without NVRTC gets a false result and a sentence saying why, which the backend selection shows when
/// it falls back to the CPU.
/// </summary>
/// <remarks>
/// Threading: the probes run once per process (thread-safe, cached). For the rest of the binding, a context is
/// current per thread in the driver; every wrapper makes its context current on the calling thread before a
/// driver call (one cuCtxSetCurrent the first time on that thread, skipped afterwards), so objects may be used
/// from any thread. Individual objects are not synchronised: do not dispose one on one thread while another
/// thread uses it, and order work on a stream from one thread at a time (a stream is a queue; the driver accepts
/// concurrent submissions, but their order is then whatever the threads make it).
/// </remarks>
public static class CudaRuntime
{
    private static readonly Lazy<CudaDriverStatus> s_driver = new(ProbeDriver, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<NvrtcStatus> s_nvrtc = new(ProbeNvrtc, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The driver probe (loads the library, cuInit, counts devices); cached after the first call.</summary>
    public static CudaDriverStatus Availability => s_driver.Value;

    /// <summary>The NVRTC probe (loads the library, asks its version); reported separately from the driver.</summary>
    public static NvrtcStatus NvrtcAvailability => s_nvrtc.Value;

    /// <summary>Initializes the driver if it can. Never throws.</summary>
    /// <param name="reason">Why CUDA cannot be used, e.g. "libcuda.so.1 not found: no NVIDIA driver"; null on success.</param>
    public static bool TryInitialize(out string? reason)
    {
        var status = Availability;
        reason = status.Reason;
        return status.IsAvailable;
    }

    /// <summary>Throws <see cref="CudaException"/> with the probe's reason unless the driver is usable.</summary>
    internal static void EnsureInitialized()
    {
        var status = Availability;
        if (!status.IsAvailable)
            throw new CudaException($"CUDA is not available: {status.Reason}");
    }

    private static unsafe CudaDriverStatus ProbeDriver()
    {
        try
        {
            var library = CudaLibraries.LoadDriver();
            if (!library.Loaded)
                return Unavailable($"{CudaLibraries.DriverDisplayName} not found: no NVIDIA driver (tried {string.Join(", ", library.Tried)})");

            int result = Driver.cuInit(0);
            if (result != CudaErrors.Success)
            {
                var (name, description) = CudaErrors.Describe(result);
                return Unavailable($"cuInit failed: {name} ({description})");
            }

            int version = 0;
            Driver.cuDriverGetVersion(&version); // informative only; 0 if it fails

            int count = 0;
            result = Driver.cuDeviceGetCount(&count);
            if (result != CudaErrors.Success)
            {
                var (name, description) = CudaErrors.Describe(result);
                return Unavailable($"cuDeviceGetCount failed: {name} ({description})", version);
            }
            if (count == 0)
                return Unavailable("the NVIDIA driver is loaded but reports no CUDA devices", version);
            return new CudaDriverStatus(true, null, version, count);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            // The file loaded but is not a usable driver (a stub, a too-old driver missing an export).
            return Unavailable($"{CudaLibraries.DriverDisplayName} is not a usable CUDA driver: {e.Message}");
        }
        catch (Exception e)
        {
            // The contract is "never throws": anything else is still a reason to fall back, not to crash.
            return Unavailable($"CUDA driver probe failed: {e.GetType().Name}: {e.Message}");
        }

        static CudaDriverStatus Unavailable(string reason, int version = 0) => new(false, reason, version, 0);
    }

    private static unsafe NvrtcStatus ProbeNvrtc()
    {
        try
        {
            var library = CudaLibraries.LoadNvrtc();
            if (!library.Loaded)
                return new NvrtcStatus(false, $"NVRTC not found: install the CUDA toolkit's NVRTC runtime or set CUDA_HOME (tried {string.Join(", ", library.Tried)})", 0, 0, null);
            int major = 0, minor = 0;
            int result = Nvrtc.nvrtcVersion(&major, &minor);
            if (result != Nvrtc.NVRTC_SUCCESS)
                return new NvrtcStatus(false, $"nvrtcVersion failed: {CudaErrors.NvrtcName(result)}", 0, 0, library.LoadedName);
            return new NvrtcStatus(true, null, major, minor, library.LoadedName);
        }
        catch (Exception e)
        {
            return new NvrtcStatus(false, $"NVRTC probe failed: {e.GetType().Name}: {e.Message}", 0, 0, null);
        }
    }
}
