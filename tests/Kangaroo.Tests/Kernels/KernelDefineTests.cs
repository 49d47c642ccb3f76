using System.Diagnostics;
using System.Text.RegularExpressions;
using Kangaroo.Backends.Cuda;
using Kangaroo.Backends.Cuda.Launchers;
using Xunit;

namespace Kangaroo.Tests.Kernels;

/// <summary>
/// The launch constants the kernels take as -D defines, checked without a GPU: each is owned by one launcher, every one a
/// kernel requires is passed, KANGAROO_KERNEL_DEFINES overrides reach kernel and launcher alike, and kernels/check.sh
/// compiles with the same values.
/// </summary>
public partial class KernelDefineTests
{
    [Fact]
    public void WithoutOverridesEveryKernelFileGetsTheLaunchersValues()
    {
        var defines = new KernelDefines(null);
        Assert.Equal(KernelDefines.All.Select(d => $"{d.Name}={d.Value}"), defines.Options);
        Assert.Contains("MATMUL_THREADS=128", defines.Options);
        Assert.Equal(KernelDefines.All.Count, KernelDefines.All.Select(d => d.Name).Distinct().Count());
        Assert.All(KernelDefines.All, d => Assert.Equal(d.Value, defines[d]));
    }

    [Fact]
    public void AnOverrideReplacesTheValueForKernelAndLauncherAndOtherNamesPassThrough()
    {
        var defines = new KernelDefines(" FEATURES=2  K_UNROLL=2 ATTENTION_BLOCK_KEYS=16 FEATURES=6");
        Assert.Equal(6, defines[MatMulLauncher.Features]);   // the last one given counts
        Assert.Equal(16, defines[AttentionLauncher.BlockKeys]);
        Assert.Equal(MatMulLauncher.Threads.Value, defines[MatMulLauncher.Threads]);
        Assert.Single(defines.Options, o => o.StartsWith("FEATURES=", StringComparison.Ordinal));
        Assert.Contains("FEATURES=6", defines.Options);
        Assert.Contains("ATTENTION_BLOCK_KEYS=16", defines.Options);
        Assert.Equal("K_UNROLL=2", defines.Options[^1]);
    }

    [Theory]
    [InlineData("FEATURES")]
    [InlineData("FEATURES=")]
    [InlineData("FEATURES=two")]
    [InlineData("NORM_THREADS=1.5")]
    public void AnOverrideOfALaunchersDefineNeedsAWholeNumber(string overrides)
    {
        var error = Assert.Throws<KangarooException>(() => new KernelDefines(overrides));
        Assert.Contains(KernelDefines.Variable, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryDefineAKernelRequiresIsALaunchersAndEveryLaunchersDefineIsRequired()
    {
        var required = CudaKernels.Sources().Values.SelectMany(s => RequiredDefine().Matches(s.Replace("\r\n", "\n")))
            .Select(m => m.Groups["name"].Value).ToHashSet();
        Assert.Equal(KernelDefines.All.Select(d => d.Name).Order(), required.Order());
    }

    [Fact]
    public void CheckShCompilesTheKernelsWithTheLaunchersValues()
    {
        string? root = RepositoryRoot();
        if (root is null) Assert.Skip("kernels/check.sh is not at hand (no Kangaroo.Native.sln above the test program)");
        var start = new ProcessStartInfo("bash", ["kernels/check.sh", "--defines"])
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        using var check = Process.Start(start)!;
        string output = check.StandardOutput.ReadToEnd();
        check.WaitForExit();
        Assert.Equal(0, check.ExitCode);
        Assert.Equal(KernelDefines.All.Select(d => $"-D{d.Name}={d.Value}").Order(),
            output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());
    }

    private static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kangaroo.Native.sln")) && File.Exists(Path.Combine(dir.FullName, "kernels", "check.sh")))
                return dir.FullName;
        return null;
    }

    [GeneratedRegex(@"^#ifndef (?<name>[A-Z][A-Z0-9_]*)\n#error ""\k<name> must be defined by the launcher""$", RegexOptions.Multiline)]
    private static partial Regex RequiredDefine();
}
