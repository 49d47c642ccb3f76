namespace Kangaroo.Cuda;

/// <summary>
/// A CUDA driver call failed. The message names the call (with the arguments that matter, such as the size of
/// an allocation or the shape of a launch) and the error, e.g.
/// <c>cuMemAlloc_v2(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)</c>.
/// </summary>
public class CudaException : Exception
{
    internal CudaException(string call, int result, string? detail = null)
        : base(Format(call, result, detail))
    {
        Call = call;
        ResultCode = result;
        ErrorName = CudaErrors.Describe(result).Name;
    }

    /// <summary>For failures that have no driver result (library missing, no device).</summary>
    public CudaException(string message) : base(message)
    {
        Call = "";
        ErrorName = "";
    }

    public CudaException(string message, Exception innerException) : base(message, innerException)
    {
        Call = "";
        ErrorName = "";
    }

    /// <summary>The failed call as it reads in the message, e.g. <c>cuMemAlloc_v2(1024 bytes)</c>.</summary>
    public string Call { get; }

    /// <summary>The driver's name for the error, e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>; empty when there was none.</summary>
    public string ErrorName { get; }

    /// <summary>True for CUDA_ERROR_OUT_OF_MEMORY: callers may free caches and retry, or fall back.</summary>
    public bool IsOutOfMemory => ResultCode == CudaErrors.OutOfMemory;

    /// <summary>The raw CUresult; internal because nothing outside the binding should branch on numbers.</summary>
    internal int ResultCode { get; }

    internal static string Format(string call, int result, string? detail)
    {
        var (name, description) = CudaErrors.Describe(result);
        var message = $"{call} failed: {name} ({description})";
        return detail is null ? message : $"{message}; {detail}";
    }
}

/// <summary>An NVRTC call other than the compilation itself failed (bad option, NVRTC out of memory, ...).</summary>
public class NvrtcException : Exception
{
    internal NvrtcException(string call, int result)
        : base($"{call} failed: {CudaErrors.NvrtcName(result)}")
    {
        Call = call;
        ErrorName = CudaErrors.NvrtcName(result);
    }

    public NvrtcException(string message) : base(message)
    {
        Call = "";
        ErrorName = "";
    }

    public NvrtcException(string message, Exception innerException) : base(message, innerException)
    {
        Call = "";
        ErrorName = "";
    }

    public string Call { get; }

    /// <summary>NVRTC's name for the error, e.g. <c>NVRTC_ERROR_INVALID_OPTION</c>.</summary>
    public string ErrorName { get; }
}

/// <summary>NVRTC rejected the source. The message carries the whole compile log, because the log is the diagnosis.</summary>
public sealed class NvrtcCompilationException : NvrtcException
{
    internal NvrtcCompilationException(string programName, string architecture, IReadOnlyList<string> options, string log)
        : base($"NVRTC compilation of '{programName}' for {architecture} failed (options: {string.Join(' ', options)}):{Environment.NewLine}{log.TrimEnd()}")
    {
        ProgramName = programName;
        Log = log;
    }

    public string ProgramName { get; }

    /// <summary>The complete program log as NVRTC produced it.</summary>
    public string Log { get; }
}
