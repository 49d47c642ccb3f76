using Kangaroo.Backends.Cuda;
using Xunit;

namespace Kangaroo.Tests.Kernels;

/// <summary>The embedded kernel sources, checked without a GPU: every kernel a launcher launches is defined by name, once.</summary>
public class KernelSourceTests
{
    [Fact]
    public void EveryLaunchedKernelIsDefinedOnceAndNamesAreIdentifiers()
    {
        var names = CudaKernels.Sources().Values.SelectMany(CudaKernels.KernelNames).ToList();
        Assert.All(names, n => Assert.Matches("^[a-z][a-z0-9_]*$", n));
        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.All(KernelSignatureTests.Signatures.SelectMany(s => s.Kernels), n => Assert.Contains(n, names));
    }
}
