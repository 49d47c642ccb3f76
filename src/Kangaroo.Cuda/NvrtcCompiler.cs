using System.Runtime.InteropServices;
using System.Text;
using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>
/// Compiles CUDA C++ to a cubin for one GPU architecture with NVRTC, caching the result on disk (see
/// <see cref="CubinCache"/>) so a process start does not recompile unchanged kernels. Thread-safe: each call
/// uses its own NVRTC program.
/// </summary>
public sealed class NvrtcCompiler
{
    private readonly CubinCache? _cache;

    /// <param name="cacheDirectory">Where cubins are cached; null = <c>$KANGAROO_CACHE_DIR/cubin</c> or <c>~/.cache/kangaroo/cubin</c>.</param>
    /// <param name="useCache">False compiles every time (for measuring compile time, or a read-only home).</param>
    public NvrtcCompiler(string? cacheDirectory = null, bool useCache = true)
    {
        _cache = useCache ? new CubinCache(cacheDirectory ?? CubinCache.DefaultDirectory()) : null;
    }

    /// <summary>Emit line information (-lineinfo) so profilers map SASS to source. Part of the cache key.</summary>
    public bool LineInfo { get; init; }

    /// <summary>The cache folder; null when caching is off.</summary>
    public string? CacheDirectory => _cache?.Directory;

    /// <summary>
    /// Compiles <paramref name="source"/> to a cubin for <c>sm_XY</c> (<paramref name="computeCapability"/>), or for
    /// the architecture-specific <c>sm_XYa</c> (e.g. sm_90a for wgmma) when <paramref name="architectureSpecific"/>.
    /// </summary>
    /// <exception cref="NvrtcCompilationException">The source did not compile; the message holds the full log.</exception>
    /// <exception cref="NvrtcException">NVRTC is missing or another NVRTC call failed.</exception>
    public byte[] CompileToCubin(string source, string programName, (int Major, int Minor) computeCapability,
        IReadOnlyList<string>? extraOptions = null, bool architectureSpecific = false)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(programName);
        var architecture = ArchitectureName(computeCapability, architectureSpecific);
        var options = BuildOptions(architecture, LineInfo, extraOptions);
        var nvrtc = RequireNvrtc();
        if (_cache is null)
            return Compile(source, programName, architecture, options, ptx: false);
        var key = CubinCache.ComputeKey(source, programName, architecture, options, nvrtc.VersionText);
        return _cache.GetOrAdd(key, () => Compile(source, programName, architecture, options, ptx: false));
    }

    /// <summary>Compiles to PTX text (not cached): for inspecting generated code.</summary>
    public string CompileToPtx(string source, string programName, (int Major, int Minor) computeCapability,
        IReadOnlyList<string>? extraOptions = null, bool architectureSpecific = false)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(programName);
        var architecture = ArchitectureName(computeCapability, architectureSpecific);
        RequireNvrtc();
        var ptx = Compile(source, programName, architecture, BuildOptions(architecture, LineInfo, extraOptions), ptx: true);
        int end = Array.IndexOf(ptx, (byte)0);
        return Encoding.UTF8.GetString(ptx, 0, end < 0 ? ptx.Length : end);
    }

    /// <summary>"sm_89", "sm_90a".</summary>
    public static string ArchitectureName((int Major, int Minor) computeCapability, bool architectureSpecific = false)
    {
        var (major, minor) = computeCapability;
        if (major is < 1 or > 99 || minor is < 0 or > 9)
            throw new ArgumentOutOfRangeException(nameof(computeCapability), computeCapability, "not a compute capability");
        return $"sm_{major}{minor}{(architectureSpecific ? "a" : "")}";
    }

    internal static IReadOnlyList<string> BuildOptions(string architecture, bool lineInfo, IReadOnlyList<string>? extraOptions)
    {
        // -default-device: functions without __host__/__device__ are device functions, so kernel sources need no
        // annotations on helpers. C++17 for if constexpr and fold expressions in templated kernels.
        var options = new List<string> { $"--gpu-architecture={architecture}", "-default-device", "--std=c++17" };
        if (lineInfo)
            options.Add("-lineinfo");
        if (extraOptions is not null)
            options.AddRange(extraOptions);
        return options;
    }

    private static NvrtcStatus RequireNvrtc()
    {
        var status = CudaRuntime.NvrtcAvailability;
        if (!status.IsAvailable)
            throw new NvrtcException($"NVRTC is not available: {status.Reason}");
        return status;
    }

    private static unsafe byte[] Compile(string source, string programName, string architecture, IReadOnlyList<string> options, bool ptx)
    {
        // Cold path (once per kernel per cache miss): plain unmanaged UTF-8 copies, freed in finally.
        var strings = new List<nint>(options.Count + 2);
        nint program = 0;
        try
        {
            nint sourceUtf8 = Marshal.StringToCoTaskMemUTF8(source);
            strings.Add(sourceUtf8);
            nint nameUtf8 = Marshal.StringToCoTaskMemUTF8(programName);
            strings.Add(nameUtf8);
            var optionPointers = new nint[options.Count];
            for (int i = 0; i < options.Count; i++)
            {
                optionPointers[i] = Marshal.StringToCoTaskMemUTF8(options[i]);
                strings.Add(optionPointers[i]);
            }

            Check(Nvrtc.nvrtcCreateProgram(&program, (byte*)sourceUtf8, (byte*)nameUtf8, 0, null, null), $"nvrtcCreateProgram({programName})");

            int result;
            fixed (nint* optionArray = optionPointers)
                result = Nvrtc.nvrtcCompileProgram(program, optionPointers.Length, (byte**)optionArray);
            if (result == Nvrtc.NVRTC_ERROR_COMPILATION)
                throw new NvrtcCompilationException(programName, architecture, options, ReadLog(program));
            Check(result, $"nvrtcCompileProgram({programName})");

            nuint size;
            if (ptx)
                Check(Nvrtc.nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
            else
                Check(Nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
            if (size == 0)
                throw new NvrtcException($"NVRTC produced an empty {(ptx ? "PTX" : "cubin")} for '{programName}' ({architecture}); is the architecture a real sm_ target?");
            var output = new byte[checked((int)size)];
            fixed (byte* pointer = output)
            {
                if (ptx)
                    Check(Nvrtc.nvrtcGetPTX(program, pointer), "nvrtcGetPTX");
                else
                    Check(Nvrtc.nvrtcGetCUBIN(program, pointer), "nvrtcGetCUBIN");
            }
            return output;
        }
        finally
        {
            if (program != 0)
                Nvrtc.nvrtcDestroyProgram(&program);
            foreach (var pointer in strings)
                Marshal.FreeCoTaskMem(pointer);
        }
    }

    private static unsafe string ReadLog(nint program)
    {
        nuint size;
        if (Nvrtc.nvrtcGetProgramLogSize(program, &size) != Nvrtc.NVRTC_SUCCESS || size <= 1)
            return "(NVRTC returned no log)";
        var log = new byte[checked((int)size)];
        fixed (byte* pointer = log)
        {
            if (Nvrtc.nvrtcGetProgramLog(program, pointer) != Nvrtc.NVRTC_SUCCESS)
                return "(NVRTC log could not be read)";
        }
        int end = Array.IndexOf(log, (byte)0);
        return Encoding.UTF8.GetString(log, 0, end < 0 ? log.Length : end);
    }

    private static void Check(int result, string call)
    {
        if (result != Nvrtc.NVRTC_SUCCESS)
            throw new NvrtcException(call, result);
    }
}
