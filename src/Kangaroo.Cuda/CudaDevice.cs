using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>A CUDA device and the properties the kernels are tuned by; queried once, when the object is made.</summary>
public sealed class CudaDevice
{
    private CudaDevice(int ordinal, int handle)
    {
        Ordinal = ordinal;
        Handle = handle;
    }

    /// <summary>Devices visible to this process (CUDA_VISIBLE_DEVICES applies). Throws if CUDA is unavailable.</summary>
    public static unsafe int Count
    {
        get
        {
            CudaRuntime.EnsureInitialized();
            int count;
            CudaErrors.Check(Driver.cuDeviceGetCount(&count), "cuDeviceGetCount");
            return count;
        }
    }

    /// <summary>The device with the given ordinal and its properties.</summary>
    public static unsafe CudaDevice Get(int ordinal)
    {
        CudaRuntime.EnsureInitialized();
        int handle;
        CudaErrors.Check(Driver.cuDeviceGet(&handle, ordinal), $"cuDeviceGet(ordinal {ordinal})");

        var device = new CudaDevice(ordinal, handle);
        const int nameCapacity = 256;
        byte* name = stackalloc byte[nameCapacity];
        CudaErrors.Check(Driver.cuDeviceGetName(name, nameCapacity, handle), "cuDeviceGetName");
        device.Name = CudaErrors.Utf8(name);

        device.ComputeCapability = (device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute capability major"),
                                    device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "compute capability minor"));
        device.MultiprocessorCount = device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessor count");
        device.L2CacheBytes = device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, "L2 cache size");
        device.MaxSharedMemoryPerBlock = device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, "max shared memory per block");
        device.MaxSharedMemoryPerBlockOptin = device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, "max shared memory per block (opt-in)");
        device.MaxThreadsPerBlock = device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "max threads per block");
        device.WarpSize = device.Attribute(Driver.CU_DEVICE_ATTRIBUTE_WARP_SIZE, "warp size");
        // Clock attributes are informative and newer drivers may retire them: absent rather than an error.
        device.ClockRateKHz = device.OptionalAttribute(Driver.CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
        device.MemoryClockRateKHz = device.OptionalAttribute(Driver.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
        device.MemoryBusWidthBits = device.OptionalAttribute(Driver.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);

        nuint total;
        CudaErrors.Check(Driver.cuDeviceTotalMem_v2(&total, handle), "cuDeviceTotalMem_v2");
        device.TotalMemoryBytes = (long)total;
        return device;
    }

    public int Ordinal { get; }

    /// <summary>The CUdevice value; internal because only the binding passes it to the driver.</summary>
    internal int Handle { get; }

    public string Name { get; private set; } = "";
    public (int Major, int Minor) ComputeCapability { get; private set; }
    public int MultiprocessorCount { get; private set; }
    public int L2CacheBytes { get; private set; }
    public int MaxSharedMemoryPerBlock { get; private set; }

    /// <summary>Shared memory a block may use after <see cref="CudaFunction.SetMaxDynamicSharedMemory"/>.</summary>
    public int MaxSharedMemoryPerBlockOptin { get; private set; }

    public int MaxThreadsPerBlock { get; private set; }
    public int WarpSize { get; private set; }
    public long TotalMemoryBytes { get; private set; }
    public int? ClockRateKHz { get; private set; }
    public int? MemoryClockRateKHz { get; private set; }
    public int? MemoryBusWidthBits { get; private set; }

    /// <summary>Theoretical DRAM bandwidth in bytes/s (double data rate), when the driver reports the clocks.</summary>
    public double? PeakMemoryBandwidthBytesPerSecond =>
        MemoryClockRateKHz is { } clock && MemoryBusWidthBits is { } width ? 2.0 * clock * 1000.0 * width / 8.0 : null;

    public override string ToString() =>
        $"{Name} (sm_{ComputeCapability.Major}{ComputeCapability.Minor}, {MultiprocessorCount} SMs, {TotalMemoryBytes / (1024.0 * 1024 * 1024):0.0} GiB)";

    private unsafe int Attribute(int attribute, string what)
    {
        int value;
        int result = Driver.cuDeviceGetAttribute(&value, attribute, Handle);
        if (result != CudaErrors.Success)
            CudaErrors.Throw(result, $"cuDeviceGetAttribute({what}, device {Ordinal})");
        return value;
    }

    private unsafe int? OptionalAttribute(int attribute)
    {
        int value;
        return Driver.cuDeviceGetAttribute(&value, attribute, Handle) == CudaErrors.Success && value > 0 ? value : null;
    }
}
