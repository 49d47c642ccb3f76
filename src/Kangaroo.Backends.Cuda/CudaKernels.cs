using System.Reflection;
using Kangaroo.Cuda;
using Kangaroo.Weights;

namespace Kangaroo.Backends.Cuda;

/// <summary>
/// The kernels of kernels/*.cu: embedded in this assembly, compiled by NVRTC for the device's architecture on first use
/// (the cubin cached on disk by source hash, architecture and NVRTC version), loaded as one module per file.
/// </summary>
internal sealed class CudaKernels : IDisposable
{
    private readonly List<CudaModule> _modules = [];
    private readonly Dictionary<string, CudaFunction> _functions = new(StringComparer.Ordinal);

    /// <param name="defines">Preprocessor definitions for every kernel file (<see cref="Launchers.KernelDefines.Options"/>), e.g. ["FEATURES=4"]; part of each cubin's cache key.</param>
    public CudaKernels(CudaContext context, (int Major, int Minor) architecture, NvrtcCompiler compiler, IReadOnlyList<string> defines)
    {
        var options = defines.Select(d => "-D" + d).ToArray();
        var assembly = typeof(CudaKernels).Assembly;
        string common = ReadResource(assembly, "kernels/common.cuh").Replace("#pragma once", "");
        foreach (string resource in assembly.GetManifestResourceNames().Where(n => n.EndsWith(".cu", StringComparison.Ordinal)).Order())
        {
            // NVRTC sees one self-contained source: the shared header pasted where the file includes it.
            string source = ReadResource(assembly, resource).Replace("#include \"common.cuh\"", common);
            byte[] cubin = compiler.CompileToCubin(source, Path.GetFileName(resource), architecture, options);
            var module = CudaModule.Load(context, cubin);
            _modules.Add(module);
            foreach (string name in KernelNames(source)) _functions[name] = module.GetFunction(name);
        }
    }

    public CudaFunction this[string name] =>
        _functions.TryGetValue(name, out var f) ? f : throw new InvalidOperationException($"kernel {name} is not in kernels/*.cu");

    /// <summary>The kernel <paramref name="stem"/>_f32 / _f16 / _bf16 for the element type it reads (weights, KV cache).</summary>
    public CudaFunction ForType(string stem, DType dtype, string variant = "") => this[stem + TypeSuffix(dtype) + variant];

    /// <summary>The part of a kernel's name that says the element type it reads: "_f32", "_f16" or "_bf16".</summary>
    public static string TypeSuffix(DType dtype) => dtype switch
    {
        DType.F32 => "_f32",
        DType.F16 => "_f16",
        DType.BF16 => "_bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The extern "C" kernels a source defines (also checked by a test that needs no GPU).</summary>
    internal static IEnumerable<string> KernelNames(string source)
    {
        const string marker = "extern \"C\" __global__ void ";
        for (int at = source.IndexOf(marker, StringComparison.Ordinal); at >= 0; at = source.IndexOf(marker, at + 1, StringComparison.Ordinal))
        {
            int start = at + marker.Length;
            // Skip an optional __launch_bounds__(...) between the return type and the name.
            if (source.AsSpan(start).StartsWith("__launch_bounds__")) start = source.IndexOf(')', start) + 2;
            int end = source.IndexOf('(', start);
            yield return source[start..end].Trim();
        }
    }

    /// <summary>Every kernel source embedded in this assembly, by file name.</summary>
    internal static IReadOnlyDictionary<string, string> Sources()
    {
        var assembly = typeof(CudaKernels).Assembly;
        return assembly.GetManifestResourceNames().Where(n => n.EndsWith(".cu", StringComparison.Ordinal))
            .ToDictionary(n => Path.GetFileName(n), n => ReadResource(assembly, n));
    }

    private static string ReadResource(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"missing embedded kernel source {name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    public void Dispose()
    {
        foreach (var module in _modules) module.Dispose();
    }
}
