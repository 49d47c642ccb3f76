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

/// <summary>Full-model logits on ILGPU against the double-precision reference, and row invariance end to end.</summary>
[Collection("ILGPU")]
public sealed class IlgpuModelTests : ModelConformanceTests
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cpu);
}

/// <summary>
/// Kangaroo greedy on ILGPU is bit-identical to vanilla greedy on ILGPU. On ILGPU's CPU accelerator this suite takes
/// about 3 minutes (thousands of small kernel launches, each waking the simulator's threads), so it runs only when
/// <c>KANGAROO_ILGPU_SLOW_TESTS=1</c>; the backend's row invariance, which it rests on, is covered by the two suites above.
/// </summary>
[Collection("ILGPU")]
public sealed class IlgpuKangarooGreedyTests : KangarooGreedyConformance
{
    protected override IComputeBackend CreateBackend() => new IlgpuBackend(IlgpuAcceleratorKind.Cpu);

    protected override string? UnavailableReason =>
        Environment.GetEnvironmentVariable("KANGAROO_ILGPU_SLOW_TESTS") == "1"
            ? null
            : "ILGPU Kangaroo greedy suite takes ~3 min on the CPU accelerator; set KANGAROO_ILGPU_SLOW_TESTS=1 to run it";
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
