using Kangaroo.Cuda;
using Kangaroo.Cuda.Interop;
using Xunit;

namespace Kangaroo.Tests.CudaBinding;

/// <summary>The probes must answer on any machine, GPU or not, without throwing.</summary>
public sealed class CudaRuntimeTests
{
    [Fact]
    public void TryInitialize_never_throws_and_gives_a_reason_exactly_when_unavailable()
    {
        bool available = CudaRuntime.TryInitialize(out var reason);

        if (available)
        {
            Assert.Null(reason);
            Assert.True(CudaRuntime.Availability.DeviceCount > 0);
        }
        else
        {
            Assert.False(string.IsNullOrWhiteSpace(reason));
            Assert.Equal(0, CudaRuntime.Availability.DeviceCount);
        }
        Assert.Equal(available, CudaRuntime.Availability.IsAvailable);
    }

    [Fact]
    public void Missing_driver_library_is_reported_as_no_NVIDIA_driver()
    {
        Assert.SkipWhen(CudaLibraries.LoadDriver().Loaded, "this machine has a CUDA driver library");

        Assert.False(CudaRuntime.TryInitialize(out var reason));
        Assert.StartsWith($"{CudaLibraries.DriverDisplayName} not found: no NVIDIA driver", reason);
    }

    [Fact]
    public void Device_queries_without_CUDA_throw_a_CudaException_carrying_the_reason()
    {
        Assert.SkipWhen(CudaRuntime.TryInitialize(out var reason), "CUDA is available here");

        var error = Assert.Throws<CudaException>(() => CudaDevice.Count);
        Assert.Contains(reason!, error.Message);
        Assert.Throws<CudaException>(() => CudaDevice.Get(0));
    }

    [Fact]
    public void Nvrtc_probe_never_throws_and_gives_a_reason_exactly_when_unavailable()
    {
        var status = CudaRuntime.NvrtcAvailability;

        if (status.IsAvailable)
        {
            Assert.Null(status.Reason);
            Assert.True(status.Major >= 11);
        }
        else
        {
            Assert.Contains("NVRTC", status.Reason);
        }
    }

    [Fact]
    public void Compiling_without_NVRTC_throws_NvrtcException_with_the_reason()
    {
        Assert.SkipWhen(CudaRuntime.NvrtcAvailability.IsAvailable, "NVRTC is available here");
        using var cache = new TestDirectory("cubin");

        var error = Assert.Throws<NvrtcException>(() => new NvrtcCompiler(cache.Path).CompileToCubin("__global__ void k() {}", "k.cu", (9, 0)));
        Assert.Contains(CudaRuntime.NvrtcAvailability.Reason!, error.Message);
    }

    [Fact]
    public void Library_candidates_prefer_versioned_names()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Equal("nvcuda.dll", CudaLibraries.DriverCandidates().First());
            return;
        }
        Assert.Equal(["libcuda.so.1", "libcuda.so"], CudaLibraries.DriverCandidates());
        Assert.Equal(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], CudaLibraries.NvrtcCandidates().Take(3));
    }
}
