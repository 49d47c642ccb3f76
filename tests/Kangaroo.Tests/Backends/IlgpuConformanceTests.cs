using Kangaroo.Backends;
using Kangaroo.Backends.Ilgpu;
using Kangaroo.Tests.Model;
using Kangaroo.Tests.Speculative;
using Xunit;

namespace Kangaroo.Tests.Backends;

/// <summary>
/// ILGPU tests run on ILGPU's CPU accelerator (so they run in CI), one class at a time: each accelerator starts its own
/// worker threads, and several at once only slow each other down.
/// </summary>
[CollectionDefinition("ILGPU", DisableParallelization = true)]
public sealed class IlgpuCollection;

/// <summary>Every op of the ILGPU backend against the scalar reference, and exact row invariance.</summary>
[Collection("ILGPU")]
public sealed class IlgpuBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cpu);

    [Fact]
    public void Describe_ListsTheCpuAcceleratorAsAvailable()
    {
        IReadOnlyList<IlgpuDeviceInfo> devices = IlgpuBackend.Describe();

        Assert.Contains(devices, device => device.Kind == IlgpuAcceleratorKind.Cpu && device.Available && device.Index == 0);
        // Every family is reported, usable or not, and an unusable one says why.
        foreach (IlgpuAcceleratorKind kind in Enum.GetValues<IlgpuAcceleratorKind>())
            Assert.Contains(devices, device => device.Kind == kind);
        Assert.All(devices, device => Assert.True(device.Available || !string.IsNullOrEmpty(device.Reason), device.ToString()));
        Assert.True(IlgpuBackend.Available(IlgpuAcceleratorKind.Cpu, out string? reason), reason);
    }

    [Fact]
    public void NameAndDeviceName_SayIlgpuAndTheAccelerator()
    {
        Assert.Equal("ilgpu", Backend.Name);
        Assert.EndsWith("ILGPU Cpu", Backend.DeviceName);
    }

    [Fact]
    public void Constructor_RejectsAMissingDeviceIndex() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new IlgpuBackend(IlgpuAcceleratorKind.Cpu, deviceIndex: 99));

    [Fact]
    public void CreateBest_ReturnsAWorkingBackend()
    {
        using IlgpuBackend backend = IlgpuBackend.CreateBest();
        using ComputeBuffer buffer = backend.Allocate(3);
        backend.Upload([1f, 2f, 3f], buffer);
        var values = new float[3];
        backend.Download(buffer, 0, values);
        Assert.Equal([1f, 2f, 3f], values);
    }

    [Fact]
    public void Copy_OverlappingRangesOfOneBuffer_BehavesLikeMemmove()
    {
        float[] values = RandomValues(50);
        ComputeBuffer buffer = Upload(values);

        Backend.Copy(buffer, 0, buffer, 10, 30);

        float[] expected = (float[])values.Clone();
        values.AsSpan(0, 30).CopyTo(expected.AsSpan(10));
        AssertBitwiseEqual(expected, Download(buffer, 50), "overlapping copy");
    }

    [Fact]
    public void ResourcesOfAnotherBackend_AreRejected()
    {
        using var other = new IlgpuBackend(IlgpuAcceleratorKind.Cpu);
        using ComputeBuffer foreign = other.Allocate(4);
        Assert.Throws<ArgumentException>(() => Backend.SiluMul(foreign, Allocate(4), Allocate(4), 4));
    }
}

/// <summary>The kernels' own sin/cos (RoPE): within one ulp of the correctly rounded value over RoPE's whole angle range.</summary>
public sealed class IlgpuSinCosTests
{
    [Fact]
    public void SinCos_IsWithinOneUlpOfTheCorrectlyRoundedValue()
    {
        var rng = new Random(11);
        for (int i = 0; i < 200_000; i++)
        {
            // Angles as RoPE makes them: position (up to 128k) times an inverse frequency in (0, 1], plus small and negative ones.
            float angle = i switch
            {
                < 1000 => (i - 500) * 0.01f,
                < 2000 => i - 1000,
                _ => rng.Next(0, 131_072) * MathF.Pow(10_000f, -(float)rng.NextDouble()),
            };
            IlgpuKernels.SinCos(angle, out float sin, out float cos);
            AssertWithinOneUlp((float)Math.Sin(angle), sin, angle, "sin");
            AssertWithinOneUlp((float)Math.Cos(angle), cos, angle, "cos");
        }
    }

    private static void AssertWithinOneUlp(float expected, float actual, float angle, string what)
    {
        float ulp = MathF.BitIncrement(MathF.Abs(expected)) - MathF.Abs(expected);
        Assert.True(MathF.Abs(expected - actual) <= ulp, $"{what}({angle:R}) = {actual:R}, expected {expected:R}");
    }
}

/// <summary>Full-model logits on ILGPU against the double-precision reference, and row invariance end to end.</summary>
[Collection("ILGPU")]
public sealed class IlgpuModelTests : ModelConformanceTests
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cpu);
}

/// <summary>
/// Kangaroo greedy on ILGPU is bit-identical to vanilla greedy on ILGPU. ILGPU's CPU accelerator is slow at this
/// (thousands of small kernel launches, each waking the simulator's threads): CI runs the first 6 of the 50 random
/// trials plus every targeted case; <c>KANGAROO_ILGPU_SLOW_TESTS=1</c> runs all 50.
/// </summary>
[Collection("ILGPU")]
public sealed class IlgpuKangarooGreedyTests : KangarooGreedyConformance
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cpu);

    protected override int RandomTrials => Environment.GetEnvironmentVariable("KANGAROO_ILGPU_SLOW_TESTS") == "1" ? 50 : 6;
}

/// <summary>The same contracts on ILGPU's CUDA accelerator: run on the GPU machine, skipped where ILGPU finds no CUDA device.</summary>
[Collection("GPU")]
public sealed class IlgpuCudaBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cuda);
    protected override string? UnavailableReason => IlgpuBackend.Available(IlgpuAcceleratorKind.Cuda, out string? why) ? null : $"ILGPU CUDA: {why}";
}

[Collection("GPU")]
public sealed class IlgpuCudaModelTests : ModelConformanceTests
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cuda);
    protected override string? UnavailableReason => IlgpuBackend.Available(IlgpuAcceleratorKind.Cuda, out string? why) ? null : $"ILGPU CUDA: {why}";
}

[Collection("GPU")]
public sealed class IlgpuCudaKangarooGreedyTests : KangarooGreedyConformance
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cuda);
    protected override string? UnavailableReason => IlgpuBackend.Available(IlgpuAcceleratorKind.Cuda, out string? why) ? null : $"ILGPU CUDA: {why}";
}
