using Kangaroo.Cuda;
using Kangaroo.Cuda.Interop;
using Xunit;

namespace Kangaroo.Tests.CudaBinding;

public sealed class CudaErrorTests
{
    [Fact]
    public void Built_in_table_names_common_codes()
    {
        Assert.Equal(("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"), CudaErrors.DescribeBuiltIn(2));
        Assert.Equal("CUDA_ERROR_INVALID_VALUE", CudaErrors.DescribeBuiltIn(1).Name);
        Assert.Equal("CUDA_ERROR_NO_DEVICE", CudaErrors.DescribeBuiltIn(100).Name);
        Assert.Equal("CUDA_ERROR_NO_BINARY_FOR_GPU", CudaErrors.DescribeBuiltIn(209).Name);
        Assert.Equal("CUDA_ERROR_ILLEGAL_ADDRESS", CudaErrors.DescribeBuiltIn(700).Name);
        Assert.Equal("CUDA_ERROR_LAUNCH_FAILED", CudaErrors.DescribeBuiltIn(719).Name);
        Assert.Equal("CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", CudaErrors.DescribeBuiltIn(901).Name);
    }

    [Fact]
    public void Exception_message_names_the_call_and_the_error()
    {
        var error = new CudaException("cuMemAlloc_v2(1073741824 bytes)", 2);

        // With a driver loaded the name comes from cuGetErrorName; both sources agree on the name.
        Assert.StartsWith("cuMemAlloc_v2(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (", error.Message);
        Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", error.ErrorName);
        Assert.Equal("cuMemAlloc_v2(1073741824 bytes)", error.Call);
        Assert.True(error.IsOutOfMemory);
    }

    [Fact]
    public void Exception_message_reads_exactly_without_a_driver()
    {
        Assert.SkipWhen(CudaLibraries.DriverLoaded, "the driver is loaded and supplies its own wording");

        var error = new CudaException("cuMemAlloc_v2(1073741824 bytes)", 2);
        Assert.Equal("cuMemAlloc_v2(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)", error.Message);
    }

    [Fact]
    public void Unknown_codes_fall_back_to_the_number()
    {
        var error = new CudaException("cuSomething", 12345);

        Assert.Contains("CUresult 12345", error.Message);
        Assert.False(error.IsOutOfMemory);
    }

    [Fact]
    public void Detail_is_appended_after_the_error()
    {
        var error = new CudaException("cuMemAlloc_v2(8 bytes)", 2, "requested 8 bytes; 0 bytes free of 16 bytes");

        Assert.EndsWith("; requested 8 bytes; 0 bytes free of 16 bytes", error.Message);
    }

    [Fact]
    public void Check_throws_only_on_failure()
    {
        CudaErrors.Check(0, "cuInit");
        var error = Assert.Throws<CudaException>(() => CudaErrors.Check(101, "cuDeviceGet(ordinal 7)"));
        Assert.StartsWith("cuDeviceGet(ordinal 7) failed: CUDA_ERROR_INVALID_DEVICE", error.Message);
    }

    [Fact]
    public void Nvrtc_names_and_compilation_log()
    {
        Assert.Equal("NVRTC_ERROR_COMPILATION", CudaErrors.NvrtcNameBuiltIn(6));
        Assert.Equal("NVRTC_ERROR_INVALID_OPTION", CudaErrors.NvrtcNameBuiltIn(5));
        Assert.Equal("nvrtcResult 99", CudaErrors.NvrtcNameBuiltIn(99));

        var log = "k.cu(3): error: identifier \"undefined_thing\" is undefined\n\n1 error detected in the compilation of \"k.cu\".\n";
        var error = new NvrtcCompilationException("k.cu", "sm_90", ["--gpu-architecture=sm_90", "-default-device"], log);
        Assert.Contains("'k.cu' for sm_90", error.Message);
        Assert.Contains("identifier \"undefined_thing\" is undefined", error.Message);
        Assert.Contains("1 error detected", error.Message);
        Assert.Equal(log, error.Log);
        Assert.IsAssignableFrom<NvrtcException>(error);
    }

    [Theory]
    [InlineData(0L, "0 bytes")]
    [InlineData(512L, "512 bytes")]
    [InlineData(1073741824L, "1073741824 bytes (1.00 GiB)")]
    [InlineData(1536L, "1536 bytes (1.50 KiB)")]
    public void Byte_counts_read_exactly_and_humanly(long bytes, string expected) =>
        Assert.Equal(expected, CudaErrors.FormatBytes(bytes));
}
