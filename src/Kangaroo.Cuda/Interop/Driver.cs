using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace Kangaroo.Cuda.Interop;

/// <summary>
/// CUDA driver API entry points (cuda.h). Every signature is blittable: handles are <see cref="nint"/>,
/// <c>CUdeviceptr</c> is <see cref="ulong"/> (64-bit only), <c>CUdevice</c> is <see cref="int"/>, <c>size_t</c> is
/// <see cref="nuint"/>, and the <c>CUresult</c> return is an <see cref="int"/>, so the generated stubs do no
/// marshalling at all. Where cuda.h #defines a name to a versioned symbol (cuMemAlloc → cuMemAlloc_v2), the
/// versioned symbol is imported directly, because that is what the header resolves to and the unversioned
/// export keeps the old 32-bit ABI. The calling convention is the platform default, which is CUDAAPI
/// (__stdcall on Win32, cdecl elsewhere).
/// </summary>
internal static unsafe partial class Driver
{
    private const string Lib = CudaLibraries.Driver;

    static Driver() => CudaLibraries.EnsureResolver();

    // Initialization, version, errors
    [LibraryImport(Lib)] public static partial int cuInit(uint flags);
    [LibraryImport(Lib)] public static partial int cuDriverGetVersion(int* driverVersion);
    [LibraryImport(Lib)] public static partial int cuGetErrorName(int error, byte** pStr);
    [LibraryImport(Lib)] public static partial int cuGetErrorString(int error, byte** pStr);

    // Devices
    [LibraryImport(Lib)] public static partial int cuDeviceGetCount(int* count);
    [LibraryImport(Lib)] public static partial int cuDeviceGet(int* device, int ordinal);
    [LibraryImport(Lib)] public static partial int cuDeviceGetName(byte* name, int len, int dev);
    [LibraryImport(Lib)] public static partial int cuDeviceGetAttribute(int* pi, int attrib, int dev);
    [LibraryImport(Lib)] public static partial int cuDeviceTotalMem_v2(nuint* bytes, int dev);

    // Primary context
    [LibraryImport(Lib)] public static partial int cuDevicePrimaryCtxRetain(nint* pctx, int dev);
    [LibraryImport(Lib)] public static partial int cuDevicePrimaryCtxRelease_v2(int dev);
    [LibraryImport(Lib)] public static partial int cuCtxSetCurrent(nint ctx);
    [LibraryImport(Lib)] public static partial int cuCtxGetCurrent(nint* pctx);
    [LibraryImport(Lib)] public static partial int cuCtxSynchronize();
    [LibraryImport(Lib)] public static partial int cuMemGetInfo_v2(nuint* free, nuint* total);

    // Modules and functions
    [LibraryImport(Lib)] public static partial int cuModuleLoadData(nint* module, void* image);
    [LibraryImport(Lib)] public static partial int cuModuleUnload(nint hmod);
    [LibraryImport(Lib)] public static partial int cuModuleGetFunction(nint* hfunc, nint hmod, byte* name);
    [LibraryImport(Lib)] public static partial int cuFuncSetAttribute(nint hfunc, int attrib, int value);
    [LibraryImport(Lib)] public static partial int cuFuncGetAttribute(int* pi, int attrib, nint hfunc);
    [LibraryImport(Lib)] public static partial int cuOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, nint func, int blockSize, nuint dynamicSMemSize);

    [LibraryImport(Lib)]
    public static partial int cuLaunchKernel(
        nint f,
        uint gridDimX, uint gridDimY, uint gridDimZ,
        uint blockDimX, uint blockDimY, uint blockDimZ,
        uint sharedMemBytes, nint hStream, void** kernelParams, void** extra);

    // Memory
    [LibraryImport(Lib)] public static partial int cuMemAlloc_v2(ulong* dptr, nuint bytesize);
    [LibraryImport(Lib)] public static partial int cuMemFree_v2(ulong dptr);
    [LibraryImport(Lib)] public static partial int cuMemAllocHost_v2(void** pp, nuint bytesize);
    [LibraryImport(Lib)] public static partial int cuMemFreeHost(void* p);
    [LibraryImport(Lib)] public static partial int cuMemsetD8_v2(ulong dstDevice, byte uc, nuint n);
    [LibraryImport(Lib)] public static partial int cuMemsetD32_v2(ulong dstDevice, uint ui, nuint n);
    [LibraryImport(Lib)] public static partial int cuMemsetD8Async(ulong dstDevice, byte uc, nuint n, nint hStream);
    [LibraryImport(Lib)] public static partial int cuMemsetD32Async(ulong dstDevice, uint ui, nuint n, nint hStream);
    [LibraryImport(Lib)] public static partial int cuMemcpyHtoD_v2(ulong dstDevice, void* srcHost, nuint byteCount);
    [LibraryImport(Lib)] public static partial int cuMemcpyDtoH_v2(void* dstHost, ulong srcDevice, nuint byteCount);
    [LibraryImport(Lib)] public static partial int cuMemcpyDtoD_v2(ulong dstDevice, ulong srcDevice, nuint byteCount);
    [LibraryImport(Lib)] public static partial int cuMemcpyHtoDAsync_v2(ulong dstDevice, void* srcHost, nuint byteCount, nint hStream);
    [LibraryImport(Lib)] public static partial int cuMemcpyDtoHAsync_v2(void* dstHost, ulong srcDevice, nuint byteCount, nint hStream);
    [LibraryImport(Lib)] public static partial int cuMemcpyDtoDAsync_v2(ulong dstDevice, ulong srcDevice, nuint byteCount, nint hStream);

    // Streams
    [LibraryImport(Lib)] public static partial int cuStreamCreate(nint* phStream, uint flags);
    [LibraryImport(Lib)] public static partial int cuStreamSynchronize(nint hStream);
    [LibraryImport(Lib)] public static partial int cuStreamWaitEvent(nint hStream, nint hEvent, uint flags);
    [LibraryImport(Lib)] public static partial int cuStreamDestroy_v2(nint hStream);

    // Events
    [LibraryImport(Lib)] public static partial int cuEventCreate(nint* phEvent, uint flags);
    [LibraryImport(Lib)] public static partial int cuEventRecord(nint hEvent, nint hStream);
    [LibraryImport(Lib)] public static partial int cuEventSynchronize(nint hEvent);
    [LibraryImport(Lib)] public static partial int cuEventElapsedTime(float* pMilliseconds, nint hStart, nint hEnd);
    [LibraryImport(Lib)] public static partial int cuEventDestroy_v2(nint hEvent);

    // Graphs (stream capture)
    [LibraryImport(Lib)] public static partial int cuStreamBeginCapture_v2(nint hStream, int mode);
    [LibraryImport(Lib)] public static partial int cuStreamEndCapture(nint hStream, nint* phGraph);
    [LibraryImport(Lib)] public static partial int cuGraphInstantiateWithFlags(nint* phGraphExec, nint hGraph, ulong flags);
    [LibraryImport(Lib)] public static partial int cuGraphLaunch(nint hGraphExec, nint hStream);
    [LibraryImport(Lib)] public static partial int cuGraphDestroy(nint hGraph);
    [LibraryImport(Lib)] public static partial int cuGraphExecDestroy(nint hGraphExec);

    // CUdevice_attribute values used here (cuda.h, CUdevice_attribute_enum).
    public const int CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1;
    public const int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8;
    public const int CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10;
    public const int CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13;
    public const int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    public const int CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36;
    public const int CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37;
    public const int CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
    public const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    public const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    public const int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;

    // CUfunction_attribute values (cuda.h, CUfunction_attribute_enum).
    public const int CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0;
    public const int CU_FUNC_ATTRIBUTE_NUM_REGS = 4;
    public const int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    // Flags.
    public const uint CU_STREAM_NON_BLOCKING = 0x1;
    public const uint CU_EVENT_DEFAULT = 0x0;
    public const uint CU_EVENT_DISABLE_TIMING = 0x2;
}
