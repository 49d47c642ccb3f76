using Kangaroo.Weights;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// The parameter list that a family of kernels shares (their extern "C" declarations in kernels/*.cu), as their launcher
/// packs it: <see cref="LaunchArguments"/> checks each argument against it, and a test that needs no GPU checks it against
/// the declarations.
/// </summary>
internal sealed class KernelSignature
{
    private readonly HashSet<string> _kernels;

    /// <summary>The element types weights are stored in: a kernel that reads weights has a variant for each.</summary>
    public static readonly DType[] WeightTypes = [DType.F32, DType.F16, DType.BF16];

    /// <summary>The element types of the KV cache: a kernel that reads or writes it has a variant for each.</summary>
    public static readonly DType[] CacheTypes = [DType.F16, DType.F32];

    public KernelSignature(IReadOnlyList<string> kernels, params KernelParameter[] parameters)
    {
        Kernels = kernels;
        _kernels = new HashSet<string>(kernels, StringComparer.Ordinal);
        Parameters = parameters;
    }

    /// <summary>The extern "C" names of the kernels that take these parameters.</summary>
    public IReadOnlyList<string> Kernels { get; }

    public KernelParameter[] Parameters { get; }

    public bool Covers(string kernel) => _kernels.Contains(kernel);

    /// <summary>
    /// <paramref name="stem"/> with each element type's suffix (<see cref="CudaKernels.TypeSuffix"/>), then one suffix of
    /// each group in turn: ("attention_partial", [F16], ["", "_wide"], ["", "_r1"]) names attention_partial_f16,
    /// attention_partial_f16_r1, attention_partial_f16_wide and attention_partial_f16_wide_r1.
    /// </summary>
    public static string[] Names(string stem, DType[] types, params string[][] suffixGroups)
    {
        IEnumerable<string> names = types.Select(t => stem + CudaKernels.TypeSuffix(t));
        foreach (string[] group in suffixGroups)
            names = names.SelectMany(name => group.Select(suffix => name + suffix));
        return [.. names];
    }

    public override string ToString() => $"{string.Join(" / ", Kernels)}({string.Join(", ", Parameters)})";
}
