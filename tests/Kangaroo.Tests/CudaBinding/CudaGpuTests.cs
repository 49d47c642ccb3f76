using Kangaroo.Cuda;
using Xunit;

namespace Kangaroo.Tests.CudaBinding;

/// <summary>
/// Tests that need a GPU. Each one skips (never passes) when the driver probe fails, so a machine without a GPU
/// reports them as skipped with the probe's reason.
/// </summary>
[Collection("GPU")]
public sealed class CudaGpuTests
{
    private const string AxpySource = """
        extern "C" __global__ void axpy(float* y, const float* x, float a, int n)
        {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n) y[i] = a * x[i] + y[i];
        }
        """;

    private static CudaContext PrimaryContextOrSkip()
    {
        if (!CudaRuntime.TryInitialize(out var reason))
            Assert.Skip($"CUDA unavailable: {reason}");
        return CudaContext.Primary(CudaDevice.Get(0));
    }

    private static void SkipWithoutNvrtc()
    {
        var nvrtc = CudaRuntime.NvrtcAvailability;
        if (!nvrtc.IsAvailable)
            Assert.Skip($"NVRTC unavailable: {nvrtc.Reason}");
    }

    private static CudaFunction LoadAxpy(CudaContext context, TestDirectory cache)
    {
        var cubin = new NvrtcCompiler(cache.Path).CompileToCubin(AxpySource, "axpy.cu", context.Device.ComputeCapability);
        var module = CudaModule.Load(context, cubin);
        return module.GetFunction("axpy");
    }

    [Fact]
    public void Device_properties_are_plausible()
    {
        using var context = PrimaryContextOrSkip();
        var device = context.Device;

        Assert.True(CudaDevice.Count >= 1);
        Assert.False(string.IsNullOrWhiteSpace(device.Name));
        Assert.True(device.ComputeCapability.Major >= 5);
        Assert.True(device.MultiprocessorCount > 0);
        Assert.True(device.L2CacheBytes > 0);
        Assert.True(device.MaxSharedMemoryPerBlockOptin >= device.MaxSharedMemoryPerBlock);
        Assert.Equal(32, device.WarpSize);
        var (free, total) = context.MemoryInfo();
        Assert.InRange(free, 1, total);
        Assert.Equal(device.TotalMemoryBytes, total);
    }

    [Fact]
    public void Copies_round_trip_sync_async_and_device_to_device()
    {
        using var context = PrimaryContextOrSkip();
        using var stream = CudaStream.Create(context);
        var data = Enumerable.Range(0, 1000).Select(i => i * 0.5f).ToArray();
        using var a = DeviceBuffer.Allocate(context, data.Length * sizeof(float));
        using var b = DeviceBuffer.Allocate(context, data.Length * sizeof(float));

        a.CopyFrom<float>(data);
        var back = new float[data.Length];
        a.CopyTo<float>(back);
        Assert.Equal(data, back);

        b.CopyFromDevice(a);
        using var pinned = PinnedHostBuffer<float>.Allocate(context, data.Length);
        b.CopyToAsync(pinned, stream);
        stream.Synchronize();
        Assert.Equal(data, pinned.Span.ToArray());

        pinned.Span.Fill(3f);
        a.CopyFromAsync(pinned, stream, destinationOffsetBytes: 400, sourceIndex: 0, count: 10);
        a.CopyToAsync(pinned, stream);
        stream.Synchronize();
        Assert.Equal(data[99], pinned.Span[99]);
        Assert.Equal(3f, pinned.Span[100]);
        Assert.Equal(3f, pinned.Span[109]);
        Assert.Equal(data[110], pinned.Span[110]);

        a.Memset32(BitConverter.SingleToUInt32Bits(-2f));
        a.CopyTo<float>(back);
        Assert.All(back, v => Assert.Equal(-2f, v));

        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopyFrom<float>(data, destinationOffsetBytes: 4));
    }

    [Fact]
    public void Nvrtc_compiles_a_kernel_that_launches_and_computes()
    {
        using var context = PrimaryContextOrSkip();
        SkipWithoutNvrtc();
        using var cache = new TestDirectory("cubin");
        using var stream = CudaStream.Create(context);
        var function = LoadAxpy(context, cache);
        const int n = 1000;
        var x = Enumerable.Range(0, n).Select(i => (float)i).ToArray();
        using var xBuffer = DeviceBuffer.Allocate(context, n * sizeof(float));
        using var yBuffer = DeviceBuffer.Allocate(context, n * sizeof(float));
        xBuffer.CopyFrom<float>(x);
        yBuffer.Memset32(BitConverter.SingleToUInt32Bits(1f));

        var args = new KernelArguments();
        args.Add(yBuffer);
        args.Add(xBuffer);
        args.Add(2f);
        args.Add(n);
        function.Launch(stream, new Dim3((n + 255) / 256), new Dim3(256), 0, in args);
        stream.Synchronize();

        var y = new float[n];
        yBuffer.CopyTo<float>(y);
        for (int i = 0; i < n; i++)
            Assert.Equal(2f * i + 1f, y[i]);
        Assert.True(function.RegisterCount > 0);

        // The second compile is a cache hit: same bytes.
        var again = new NvrtcCompiler(cache.Path).CompileToCubin(AxpySource, "axpy.cu", context.Device.ComputeCapability);
        Assert.Single(Directory.GetFiles(cache.Path, "*.cubin"));
        Assert.Equal(0x7F, again[0]);
    }

    [Fact]
    public void Launch_failure_names_the_kernel_and_shape()
    {
        using var context = PrimaryContextOrSkip();
        SkipWithoutNvrtc();
        using var cache = new TestDirectory("cubin");
        using var stream = CudaStream.Create(context);
        var function = LoadAxpy(context, cache);
        using var buffer = DeviceBuffer.Allocate(context, 256);

        var error = Assert.Throws<CudaException>(() =>
        {
            var args = new KernelArguments();
            args.Add(buffer);
            args.Add(buffer);
            args.Add(1f);
            args.Add(0);
            function.Launch(stream, new Dim3(1), new Dim3(4096), 0, in args); // more threads than any GPU allows
        });
        Assert.Contains("cuLaunchKernel(axpy, grid (1, 1, 1), block (4096, 1, 1), 0 shared bytes) failed: CUDA_ERROR_", error.Message);
    }

    [Fact]
    public void Compile_errors_carry_the_log()
    {
        using var context = PrimaryContextOrSkip();
        SkipWithoutNvrtc();
        using var cache = new TestDirectory("cubin");

        var error = Assert.Throws<NvrtcCompilationException>(() =>
            new NvrtcCompiler(cache.Path).CompileToCubin("extern \"C\" __global__ void k() { undefined_thing(); }", "bad.cu", context.Device.ComputeCapability));
        Assert.Contains("undefined_thing", error.Message);
        Assert.Empty(Directory.GetFiles(cache.Path, "*.cubin"));
    }

    [Fact]
    public void Events_time_work_on_a_stream()
    {
        using var context = PrimaryContextOrSkip();
        using var stream = CudaStream.Create(context);
        using var start = CudaEvent.Create(context);
        using var end = CudaEvent.Create(context);
        using var buffer = DeviceBuffer.Allocate(context, 64L << 20);

        start.Record(stream);
        buffer.Memset32(0, stream);
        end.Record(stream);
        end.Synchronize();

        Assert.True(CudaEvent.ElapsedMilliseconds(start, end) >= 0f);
    }

    [Fact]
    public void Captured_graph_replays_the_recorded_work()
    {
        using var context = PrimaryContextOrSkip();
        SkipWithoutNvrtc();
        using var cache = new TestDirectory("cubin");
        using var stream = CudaStream.Create(context);
        var function = LoadAxpy(context, cache);
        const int n = 512;
        var x = Enumerable.Range(0, n).Select(i => (float)i).ToArray();
        using var xBuffer = DeviceBuffer.Allocate(context, n * sizeof(float));
        using var yBuffer = DeviceBuffer.Allocate(context, n * sizeof(float));
        xBuffer.CopyFrom<float>(x);
        yBuffer.Memset32(0);

        CudaGraph.BeginCapture(stream);
        for (int k = 0; k < 2; k++)
        {
            var args = new KernelArguments();
            args.Add(yBuffer);
            args.Add(xBuffer);
            args.Add(1f);
            args.Add(n);
            function.Launch(stream, new Dim3(n / 128), new Dim3(128), 0, in args);
        }
        using var graph = CudaGraph.EndCapture(stream);

        var y = new float[n];
        yBuffer.CopyTo<float>(y);
        Assert.All(y, v => Assert.Equal(0f, v)); // capture records, it does not run

        for (int replay = 0; replay < 3; replay++)
            graph.Launch(stream);
        stream.Synchronize();
        yBuffer.CopyTo<float>(y);
        for (int i = 0; i < n; i++)
            Assert.Equal(6f * i, y[i]);
    }

    [Fact]
    public void Out_of_memory_says_what_was_asked_and_what_is_free()
    {
        using var context = PrimaryContextOrSkip();
        long tooMuch = context.Device.TotalMemoryBytes * 2;

        var error = Assert.Throws<CudaException>(() => DeviceBuffer.Allocate(context, tooMuch));

        Assert.True(error.IsOutOfMemory);
        Assert.StartsWith($"cuMemAlloc_v2({tooMuch} bytes) failed: CUDA_ERROR_OUT_OF_MEMORY", error.Message);
        Assert.Contains("free of", error.Message);
    }

    [Fact]
    public void Loading_garbage_as_a_module_throws_a_CudaException()
    {
        using var context = PrimaryContextOrSkip();

        var error = Assert.Throws<CudaException>(() => CudaModule.Load(context, "this is not PTX"u8));
        Assert.Contains("cuModuleLoadData", error.Message);
    }

    [Fact]
    public void Disposed_objects_throw_ObjectDisposedException()
    {
        using var context = PrimaryContextOrSkip();
        var buffer = DeviceBuffer.Allocate(context, 64);
        buffer.Dispose();

        Assert.True(buffer.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => buffer.Memset32(0));
    }
}
