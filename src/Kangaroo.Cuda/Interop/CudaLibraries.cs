using System.Reflection;
using System.Runtime.InteropServices;

namespace Kangaroo.Cuda.Interop;

/// <summary>
/// Finds the CUDA driver and NVRTC shared libraries. The P/Invoke declarations name the logical libraries
/// <see cref="Driver"/> and <see cref="Nvrtc"/>; the resolver maps them to the versioned file names the loader
/// would not try on its own (a machine with only the driver installed has <c>libcuda.so.1</c> but no
/// <c>libcuda.so</c> development symlink, and NVRTC ships as <c>libnvrtc.so.13</c>/<c>.12</c>).
/// </summary>
internal static class CudaLibraries
{
    public const string Driver = "kangaroo-cuda-driver";
    public const string Nvrtc = "kangaroo-nvrtc";

    private static readonly Lock s_gate = new();
    private static int s_resolverInstalled;
    private static LoadResult? s_driver;
    private static LoadResult? s_nvrtc;

    /// <summary>The outcome of one library search: a handle, or the names tried.</summary>
    internal sealed record LoadResult(nint Handle, string? LoadedName, IReadOnlyList<string> Tried)
    {
        public bool Loaded => Handle != 0;
    }

    /// <summary>
    /// Installs the import resolver for this assembly. Called from the static constructors of the P/Invoke
    /// classes so it is in place before the first native call; a module initializer would do too, but the
    /// analyzers (rightly) discourage them in libraries.
    /// </summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref s_resolverInstalled, 1) != 0)
            return;
        NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) => libraryName switch
    {
        Driver => LoadDriver().Handle,
        Nvrtc => LoadNvrtc().Handle,
        _ => 0, // not ours: default probing
    };

    /// <summary>Loads (once) the driver library; never throws.</summary>
    public static LoadResult LoadDriver()
    {
        lock (s_gate)
            return s_driver ??= TryLoad(DriverCandidates());
    }

    /// <summary>Loads (once) NVRTC; never throws.</summary>
    public static LoadResult LoadNvrtc()
    {
        lock (s_gate)
            return s_nvrtc ??= TryLoad(NvrtcCandidates());
    }

    /// <summary>True once the driver library is loaded: error-name lookups may call into it.</summary>
    public static bool DriverLoaded
    {
        get
        {
            lock (s_gate)
                return s_driver is { Loaded: true };
        }
    }

    /// <summary>The file name a user should look for when the driver is missing.</summary>
    public static string DriverDisplayName => OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";

    private static LoadResult TryLoad(IEnumerable<string> candidates)
    {
        var tried = new List<string>();
        foreach (var name in candidates)
        {
            tried.Add(name);
            try
            {
                if (NativeLibrary.TryLoad(name, out var handle))
                    return new LoadResult(handle, name, tried);
            }
            catch (Exception e) when (e is ArgumentException or BadImageFormatException)
            {
                // A malformed candidate (wrong architecture) is the same as an absent one: try the next.
            }
        }
        return new LoadResult(0, null, tried);
    }

    internal static IEnumerable<string> DriverCandidates()
    {
        if (OperatingSystem.IsWindows())
        {
            yield return "nvcuda.dll";
            yield break;
        }
        // The driver is installed by the kernel-module package into the loader path; only the SONAME is
        // guaranteed. libcuda.so is the toolkit's stub-or-symlink and comes second.
        yield return "libcuda.so.1";
        yield return "libcuda.so";
    }

    internal static IEnumerable<string> NvrtcCandidates()
    {
        if (OperatingSystem.IsWindows())
        {
            string[] names = ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"];
            foreach (var name in names)
                yield return name;
            // The toolkit installer does not always put its bin folder on PATH; CUDA 13 moved the DLLs to bin\x64.
            foreach (var root in ToolkitRoots())
                foreach (var sub in (string[])[Path.Combine("bin", "x64"), "bin"])
                    foreach (var name in names)
                        yield return Path.Combine(root, sub, name);
            yield break;
        }
        string[] sonames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];
        foreach (var name in sonames)
            yield return name;
        // NVRTC lives in the toolkit, which is often not on the loader path (no ld.so.conf entry).
        foreach (var root in ToolkitRoots())
            foreach (var name in sonames)
                yield return Path.Combine(root, "lib64", name);
    }

    private static IEnumerable<string> ToolkitRoots()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var variable in (string[])["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"])
        {
            var value = Environment.GetEnvironmentVariable(variable);
            if (!string.IsNullOrWhiteSpace(value) && seen.Add(value))
                yield return value;
        }
        if (!OperatingSystem.IsWindows() && seen.Add("/usr/local/cuda"))
            yield return "/usr/local/cuda";
    }
}
