using Kangaroo.Backends;
using Kangaroo.Backends.Cuda;
using Kangaroo.Tests.Backends;
using Kangaroo.Tests.Model;
using Kangaroo.Tests.Speculative;

namespace Kangaroo.Tests.Gpu;

/// <summary>Why the CUDA backend cannot run here (no driver, no GPU, no NVRTC), or null. GPU tests skip with this reason.</summary>
internal static class CudaAvailability
{
    public static string? Reason => CudaBackend.IsAvailable(out string? reason) ? null : $"CUDA backend unavailable: {reason}";
}

/// <summary>Every op of the CUDA backend against the scalar reference, and exact row invariance.</summary>
public sealed class CudaBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend();
    protected override string? UnavailableReason => CudaAvailability.Reason;

    // Keys and values live in F16 in the CUDA cache.
    protected override double AttentionTolerance => 2e-3;
}

/// <summary>The same contract with an F32 KV cache: attention held to the F32 bound.</summary>
public sealed class CudaF32KvBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(kvCacheType: Kangaroo.Weights.DType.F32);
    protected override string? UnavailableReason => CudaAvailability.Reason;
}

/// <summary>Full-model logits on CUDA against the double-precision reference, and row invariance end to end.</summary>
public sealed class CudaModelTests : ModelConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend();
    protected override string? UnavailableReason => CudaAvailability.Reason;
    protected override double LogitTolerance => 2e-3;
}

/// <summary>Kangaroo greedy on CUDA is bit-identical to vanilla greedy on CUDA.</summary>
public sealed class CudaKangarooGreedyTests : KangarooGreedyConformance
{
    protected override IComputeBackend CreateBackend() => new CudaBackend();
    protected override string? UnavailableReason => CudaAvailability.Reason;
}
