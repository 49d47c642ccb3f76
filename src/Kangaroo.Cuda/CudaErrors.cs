using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>
/// Result-code checking and formatting. The success path is one compare; everything that builds a message
/// lives in non-inlined throw helpers so hot callers stay small and allocate nothing.
/// </summary>
internal static unsafe class CudaErrors
{
    public const int Success = 0;
    public const int OutOfMemory = 2;
    public const int NotInitialized = 3;
    public const int NoDevice = 100;
    public const int NoBinaryForGpu = 209;

    /// <summary>
    /// Names and descriptions of the codes this engine is likely to meet, used when the driver cannot be asked
    /// (not loaded, or cuGetErrorName itself fails). Values and wording follow cuda.h / cuGetErrorString.
    /// </summary>
    private static readonly Dictionary<int, (string Name, string Description)> s_known = new()
    {
        [0] = ("CUDA_SUCCESS", "no error"),
        [1] = ("CUDA_ERROR_INVALID_VALUE", "invalid argument"),
        [2] = ("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
        [3] = ("CUDA_ERROR_NOT_INITIALIZED", "initialization error"),
        [4] = ("CUDA_ERROR_DEINITIALIZED", "driver shutting down"),
        [34] = ("CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"),
        [46] = ("CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) is/are busy or unavailable"),
        [100] = ("CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"),
        [101] = ("CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"),
        [200] = ("CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"),
        [201] = ("CUDA_ERROR_INVALID_CONTEXT", "invalid device context"),
        [209] = ("CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"),
        [218] = ("CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"),
        [222] = ("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain"),
        [300] = ("CUDA_ERROR_INVALID_SOURCE", "device kernel image is invalid"),
        [400] = ("CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"),
        [401] = ("CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"),
        [500] = ("CUDA_ERROR_NOT_FOUND", "named symbol not found"),
        [600] = ("CUDA_ERROR_NOT_READY", "device not ready"),
        [700] = ("CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"),
        [701] = ("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"),
        [702] = ("CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"),
        [709] = ("CUDA_ERROR_CONTEXT_IS_DESTROYED", "context is destroyed"),
        [710] = ("CUDA_ERROR_ASSERT", "device-side assert triggered"),
        [714] = ("CUDA_ERROR_HARDWARE_STACK_ERROR", "hardware stack error"),
        [715] = ("CUDA_ERROR_ILLEGAL_INSTRUCTION", "an illegal instruction was encountered"),
        [716] = ("CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"),
        [717] = ("CUDA_ERROR_INVALID_ADDRESS_SPACE", "operation not supported on global/shared address space"),
        [718] = ("CUDA_ERROR_INVALID_PC", "invalid program counter"),
        [719] = ("CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"),
        [800] = ("CUDA_ERROR_NOT_PERMITTED", "operation not permitted"),
        [801] = ("CUDA_ERROR_NOT_SUPPORTED", "operation not supported"),
        [802] = ("CUDA_ERROR_SYSTEM_NOT_READY", "system not yet initialized"),
        [803] = ("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "system has unsupported display driver / cuda driver combination"),
        [804] = ("CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", "forward compatibility was attempted on non supported HW"),
        [900] = ("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"),
        [901] = ("CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"),
        [904] = ("CUDA_ERROR_STREAM_CAPTURE_UNJOINED", "capture was not joined back into the origin stream"),
        [905] = ("CUDA_ERROR_STREAM_CAPTURE_ISOLATION", "operation would have made the stream depend on an uncaptured event"),
        [906] = ("CUDA_ERROR_STREAM_CAPTURE_IMPLICIT", "operation would make the legacy stream depend on a capturing blocking stream"),
        [908] = ("CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD", "attempt to terminate a thread-local capture sequence from another thread"),
        [999] = ("CUDA_ERROR_UNKNOWN", "unknown error"),
    };

    private static readonly Dictionary<int, string> s_nvrtcKnown = new()
    {
        [0] = "NVRTC_SUCCESS",
        [1] = "NVRTC_ERROR_OUT_OF_MEMORY",
        [2] = "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
        [3] = "NVRTC_ERROR_INVALID_INPUT",
        [4] = "NVRTC_ERROR_INVALID_PROGRAM",
        [5] = "NVRTC_ERROR_INVALID_OPTION",
        [6] = "NVRTC_ERROR_COMPILATION",
        [7] = "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
        [8] = "NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION",
        [9] = "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION",
        [10] = "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID",
        [11] = "NVRTC_ERROR_INTERNAL_ERROR",
        [12] = "NVRTC_ERROR_TIME_FILE_WRITE_FAILED",
    };

    /// <summary>Throws a <see cref="CudaException"/> unless <paramref name="result"/> is CUDA_SUCCESS.</summary>
    /// <remarks><paramref name="call"/> is a constant at every call site, so the success path allocates nothing.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check(int result, string call)
    {
        if (result != Success)
            Throw(result, call);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Throw(int result, string call) => throw new CudaException(call, result);

    /// <summary>Name and description: from the driver when it is loaded, else from the built-in table, else the number.</summary>
    public static (string Name, string Description) Describe(int result)
    {
        if (TryDescribeFromDriver(result, out var name, out var description))
            return (name, description);
        if (s_known.TryGetValue(result, out var known))
            return known;
        return ($"CUresult {result}", "unrecognised error code");
    }

    /// <summary>The built-in table only (what the message reads like without a driver).</summary>
    internal static (string Name, string Description) DescribeBuiltIn(int result) =>
        s_known.TryGetValue(result, out var known) ? known : ($"CUresult {result}", "unrecognised error code");

    private static bool TryDescribeFromDriver(int result, out string name, out string description)
    {
        name = description = "";
        // Only ask the driver once it is loaded: formatting an error must never trigger a library search,
        // and with no driver the P/Invoke would throw DllNotFoundException from inside a throw path.
        if (!CudaLibraries.DriverLoaded)
            return false;
        try
        {
            byte* namePtr = null, descriptionPtr = null;
            if (Driver.cuGetErrorName(result, &namePtr) != Success || namePtr == null)
                return false;
            name = Utf8(namePtr);
            description = Driver.cuGetErrorString(result, &descriptionPtr) == Success && descriptionPtr != null
                ? Utf8(descriptionPtr)
                : DescribeBuiltIn(result).Description;
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    public static string NvrtcName(int result)
    {
        if (CudaLibraries.LoadNvrtc().Loaded)
        {
            try
            {
                var text = Nvrtc.nvrtcGetErrorString(result);
                if (text != null)
                    return Utf8(text);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                // fall through to the table
            }
        }
        return s_nvrtcKnown.TryGetValue(result, out var name) ? name : $"nvrtcResult {result}";
    }

    internal static string NvrtcNameBuiltIn(int result) =>
        s_nvrtcKnown.TryGetValue(result, out var name) ? name : $"nvrtcResult {result}";

    public static string Utf8(byte* text) =>
        text == null ? "" : Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(text));

    /// <summary>Bytes as "1073741824 bytes (1.00 GiB)": exact for logs, readable for people.</summary>
    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} bytes" : $"{bytes} bytes ({value:0.00} {units[unit]})";
    }
}
