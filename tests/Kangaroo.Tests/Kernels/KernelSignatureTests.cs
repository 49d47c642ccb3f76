using System.Text.RegularExpressions;
using Kangaroo.Backends.Cuda;
using Kangaroo.Backends.Cuda.Launchers;
using Xunit;

using static Kangaroo.Backends.Cuda.Launchers.KernelParameter;

namespace Kangaroo.Tests.Kernels;

/// <summary>
/// What each launcher packs, checked without a GPU against the kernels' extern "C" declarations in kernels/*.cu: every
/// kernel belongs to one <see cref="KernelSignature"/>, and each signature has its kernels' parameter count and kinds
/// (pointer, int, long long, float). The launchers pack through <see cref="LaunchArguments"/>, which holds every launch
/// to its signature.
/// </summary>
public partial class KernelSignatureTests
{
    internal static IReadOnlyList<KernelSignature> Signatures =>
    [
        .. MatMulLauncher.Signatures, .. AttentionLauncher.Signatures, .. NormLauncher.Signatures,
        .. ElementwiseLauncher.Signatures, .. SelectionLauncher.Signatures,
    ];

    [Fact]
    public void EveryKernelIsLaunchedThroughExactlyOneSignature()
    {
        var declared = CudaKernels.Sources().Values.SelectMany(CudaKernels.KernelNames).ToList();
        foreach (string kernel in declared)
            Assert.True(Signatures.Count(s => s.Covers(kernel)) == 1, $"{kernel} is covered by {Signatures.Count(s => s.Covers(kernel))} launcher signatures, not 1");
        foreach (var signature in Signatures)
            Assert.All(signature.Kernels, kernel => Assert.Contains(kernel, declared));
    }

    [Fact]
    public void EachSignatureHasItsKernelsParameters()
    {
        var declarations = Declarations(CudaKernels.Sources());
        foreach (var signature in Signatures)
        {
            foreach (string kernel in signature.Kernels)
            {
                Assert.True(declarations.TryGetValue(kernel, out var parameters), $"{kernel} is not declared in kernels/*.cu");
                Assert.True(parameters.SequenceEqual(signature.Parameters),
                    $"{kernel}: kernels/*.cu declares ({string.Join(", ", parameters)}), its launcher packs ({string.Join(", ", signature.Parameters)})");
            }
        }
    }

    [Fact]
    public void DeclarationsAreReadThroughParameterMacrosLaunchBoundsAndLineBreaks()
    {
        const string source = """
            #define PAIR_PARAMETERS(T) \
                const T* a, /* the first */ \
                T* b
            #define WRAP(X) X, float scale
            extern "C" __global__ void __launch_bounds__(128) pair_f32(PAIR_PARAMETERS(float)) { }
            extern "C" __global__ void mixed(
                const float* __restrict__ x, int n, // a comment, with a comma
                long long offset, unsigned long long bytes, WRAP(float* y)) { }
            extern "C" __global__ void nothing() { }
            """;
        var declarations = Declarations(new Dictionary<string, string> { ["test.cu"] = source });
        Assert.Equal([Pointer, Pointer], declarations["pair_f32"]);
        Assert.Equal([Pointer, Int, Long, Long, Pointer, Float], declarations["mixed"]);
        Assert.Empty(declarations["nothing"]);
        Assert.Throws<FormatException>(() => Declarations(new Dictionary<string, string> { ["bad.cu"] = "extern \"C\" __global__ void k(double d) { }" }));
    }

    [Fact]
    public void LaunchArgumentsHoldALaunchToItsSignature()
    {
        var signature = new KernelSignature(["k"], Pointer, Int, Long, Float);
        var args = new LaunchArguments(signature);
        args.NullPointer(); args.Int(3); args.Long(1L << 40); args.Float(0.5f);
        args.CheckComplete("k");
        Assert.Equal(4, args.Count);
        Assert.Throws<InvalidOperationException>(() => new LaunchArguments(signature).CheckComplete("other_kernel"));

        var error = Assert.Throws<InvalidOperationException>(() => { var a = new LaunchArguments(signature); a.NullPointer(); a.Long(3); });
        Assert.Contains("argument 1 is a Int, a Long was packed", error.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => { var a = new LaunchArguments(signature); a.Int(3); });
        Assert.Throws<InvalidOperationException>(() => { var a = new LaunchArguments(signature); a.NullPointer(); a.Int(1); a.CheckComplete("k"); });
        Assert.Throws<InvalidOperationException>(() =>
        {
            var a = new LaunchArguments(signature);
            a.NullPointer(); a.Int(1); a.Long(2); a.Float(3); a.Float(4);
        });
    }

    [Fact]
    public void NamesAreTheStemWithTypeSuffixesThenEachGroupInTurn()
    {
        Assert.Equal(["a_f16", "a_f16_r1", "a_f16_wide", "a_f16_wide_r1", "a_f32", "a_f32_r1", "a_f32_wide", "a_f32_wide_r1"],
            KernelSignature.Names("a", [Kangaroo.Weights.DType.F16, Kangaroo.Weights.DType.F32], ["", "_wide"], ["", "_r1"]));
    }

    /// <summary>
    /// The parameter kinds of every extern "C" kernel in <paramref name="sources"/>, with the function-like macros the
    /// files define expanded (the kernels' parameter lists are written through them).
    /// </summary>
    internal static Dictionary<string, KernelParameter[]> Declarations(IReadOnlyDictionary<string, string> sources)
    {
        var kernels = new Dictionary<string, KernelParameter[]>(StringComparer.Ordinal);
        foreach (var (file, text) in sources)
        {
            string code = BlockComment().Replace(text.Replace("\r\n", "\n"), " ");
            code = LineComment().Replace(code, "").Replace("\\\n", " ");
            var macros = MacroDefinition().Matches(code).ToDictionary(m => m.Groups["name"].Value,
                m => (Parameters: m.Groups["parameters"].Value.Split(',', StringSplitOptions.TrimEntries), Body: m.Groups["body"].Value));
            foreach (Match declaration in KernelDeclaration().Matches(code))
            {
                int open = declaration.Index + declaration.Length - 1;
                string parameters = Expand(code[(open + 1)..Closing(code, open)], macros);
                kernels.Add(declaration.Groups["name"].Value,
                    [.. TopLevelSplit(parameters).Where(p => p.Length > 0).Select(p => Kind(p, $"{file}: {declaration.Groups["name"].Value}"))]);
            }
        }
        return kernels;
    }

    private static string Expand(string text, Dictionary<string, (string[] Parameters, string Body)> macros)
    {
        for (int round = 0; round < 16; round++)
        {
            var use = macros.Count == 0 ? Match.Empty : Regex.Match(text, $@"\b(?<name>{string.Join("|", macros.Keys)})\s*\(");
            if (!use.Success) return text;
            var (parameters, body) = macros[use.Groups["name"].Value];
            int open = use.Index + use.Length - 1, close = Closing(text, open);
            string[] arguments = TopLevelSplit(text[(open + 1)..close]);
            for (int i = 0; i < parameters.Length; i++)
                body = Regex.Replace(body, $@"\b{Regex.Escape(parameters[i])}\b", arguments[i]);
            text = text[..use.Index] + body + text[(close + 1)..];
        }
        throw new FormatException("parameter macros nest deeper than 16 expansions");
    }

    private static int Closing(string text, int open)
    {
        for (int i = open, depth = 0; i < text.Length; i++)
        {
            if (text[i] == '(') depth++;
            else if (text[i] == ')' && --depth == 0) return i;
        }
        throw new FormatException($"no ')' closes the '(' at {open}");
    }

    private static string[] TopLevelSplit(string list)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < list.Length; i++)
        {
            if (list[i] == '(') depth++;
            else if (list[i] == ')') depth--;
            else if (list[i] == ',' && depth == 0)
            {
                parts.Add(list[start..i].Trim());
                start = i + 1;
            }
        }
        parts.Add(list[start..].Trim());
        return [.. parts];
    }

    private static KernelParameter Kind(string parameter, string where)
    {
        if (parameter.Contains('*')) return Pointer;
        var words = Regex.Split(parameter.Trim(), @"\s+").Where(w => w is not ("const" or "volatile" or "__restrict__")).ToArray();
        return string.Join(" ", words[..^1]) switch   // the last word is the parameter's name
        {
            "int" => Int,
            "float" => Float,
            "long long" or "unsigned long long" => Long,
            var type => throw new FormatException($"{where}: parameter \"{parameter}\" has a type ({type}) this test does not know"),
        };
    }

    [GeneratedRegex(@"/\*.*?\*/", RegexOptions.Singleline)]
    private static partial Regex BlockComment();

    [GeneratedRegex(@"//[^\n]*")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"^[ \t]*#define[ \t]+(?<name>\w+)\((?<parameters>[^)]*)\)(?<body>[^\n]*)$", RegexOptions.Multiline)]
    private static partial Regex MacroDefinition();

    [GeneratedRegex(@"extern\s+""C""\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(?<name>\w+)\s*\(")]
    private static partial Regex KernelDeclaration();
}
