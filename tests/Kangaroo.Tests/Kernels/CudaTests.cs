using Kangaroo.Backends;
using Kangaroo.Backends.Cuda;
using Kangaroo.Tests.Backends;
using Kangaroo.Tests.Model;
using Kangaroo.Tests.Speculative;
using Xunit;

namespace Kangaroo.Tests.Kernels;

/// <summary>
/// GPU test classes run one at a time. Two CudaBackend instances driven from parallel test classes in one process gave
/// wrong results in about one GPU test in a hundred (runs of 2026-11-26); every class passes run serially and under
/// compute-sanitizer memcheck. One backend shared by many sessions (the supported use) is tested on its own below.
/// </summary>
[CollectionDefinition("GPU", DisableParallelization = true)]
public sealed class GpuCollection;

/// <summary>Why the CUDA backend cannot run here (no driver, no GPU, no NVRTC), or null. GPU tests skip with this reason.</summary>
internal static class CudaAvailability
{
    public static string? Reason => CudaBackend.IsAvailable(out string? reason) ? null : $"CUDA backend unavailable: {reason}";
}

/// <summary>Every op of the CUDA backend (CUDA-core matmuls) against the scalar reference, and exact row invariance.</summary>
[Collection("GPU")]
public sealed class CudaBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(tensorCoreMatMul: false);
    protected override string? UnavailableReason => CudaAvailability.Reason;

    // Keys and values live in F16 in the CUDA cache.
    protected override double AttentionTolerance => 2e-3;
}

/// <summary>The same contract with an F32 KV cache: attention held to the F32 bound.</summary>
[Collection("GPU")]
public sealed class CudaF32KvBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(kvCacheType: Kangaroo.Weights.DType.F32, tensorCoreMatMul: false);
    protected override string? UnavailableReason => CudaAvailability.Reason;
}

/// <summary>The same contract with F16/BF16 matmuls on the tensor-core kernels (mma.sync, activations split into parts).</summary>
[Collection("GPU")]
public sealed class CudaTensorCoreBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(tensorCoreMatMul: true);
    protected override string? UnavailableReason => CudaAvailability.Reason;
    protected override double AttentionTolerance => 2e-3;
}

/// <summary>Full-model logits on CUDA (CUDA-core matmuls) against the double-precision reference, and row invariance end to end.</summary>
[Collection("GPU")]
public sealed class CudaModelTests : ModelConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(tensorCoreMatMul: false);
    protected override string? UnavailableReason => CudaAvailability.Reason;
    protected override double LogitTolerance => 2e-3;
}

/// <summary>Kangaroo greedy on CUDA is bit-identical to vanilla greedy on CUDA, with the CUDA-core matmuls.</summary>
[Collection("GPU")]
public sealed class CudaKangarooGreedyTests : KangarooGreedyConformance
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(tensorCoreMatMul: false);
    protected override string? UnavailableReason => CudaAvailability.Reason;
    // Sliding-window attention is not in the CUDA kernels yet: Mistral-window trials are the CPU and ILGPU backends'.
    protected override bool SlidesWindows => false;
}

/// <summary>Kangaroo greedy equals vanilla greedy with the tensor-core matmuls too, and full-model logits stay in bounds.</summary>
[Collection("GPU")]
public sealed class CudaTensorCoreKangarooGreedyTests : KangarooGreedyConformance
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(tensorCoreMatMul: true);
    protected override string? UnavailableReason => CudaAvailability.Reason;
    // Sliding-window attention is not in the CUDA kernels yet: Mistral-window trials are the CPU and ILGPU backends'.
    protected override bool SlidesWindows => false;
}

[Collection("GPU")]
public sealed class CudaTensorCoreModelTests : ModelConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CudaBackend(tensorCoreMatMul: true);
    protected override string? UnavailableReason => CudaAvailability.Reason;
    protected override double LogitTolerance => 2e-3;
}

/// <summary>Many sessions on one CUDA backend from several threads: each generation equals its sequential run.</summary>
[Collection("GPU")]
public sealed class CudaConcurrentSessionsTests
{
    [Fact]
    public void ConcurrentGenerationsOnOneBackendMatchSequentialOnes()
    {
        if (CudaAvailability.Reason is { } reason) Assert.Skip(reason);
        using var dir = new TestDirectory();
        Kangaroo.Tests.TinyModels.TestModels.WriteWithAdapter(dir.Path);
        using var backend = new CudaBackend();
        using var model = LanguageModel.Load(dir.Path, new ModelLoadOptions { Backend = backend });
        string[] prompts = ["import os\n", "class Stack:\n", "def add(a, b):\n", "for i in range(10):\n", "while True:\n", "x = [", "print(", "# comment\n"];
        var options = new Kangaroo.Generation.GenerationOptions { MaxNewTokens = 30, StopAtEndOfSequence = false };
        var kangaroo = options with { Speculation = new Kangaroo.Speculative.KangarooOptions() };
        var expected = prompts.Select(p => model.Generate(p, options).TokenIds).ToArray();
        var actual = new IReadOnlyList<int>[prompts.Length];
        var actualKangaroo = new IReadOnlyList<int>[prompts.Length];
        Parallel.For(0, prompts.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            actual[i] = model.Generate(prompts[i], options).TokenIds;
            actualKangaroo[i] = model.Generate(prompts[i], kangaroo).TokenIds;
        });
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(expected[i], actual[i]);
            Assert.Equal(expected[i], actualKangaroo[i]);
        }
    }
}

/// <summary>
/// Many sequences whose verification passes keep growing: attention scratch outgrown after a pass was recorded must stay
/// valid for that pass's replays (it once was freed, and replays wrote into whatever came next).
/// </summary>
[Collection("GPU")]
public sealed class CudaLargeBatchTests
{
    [Fact]
    public void ThirtyTwoKangarooSequencesOfGrowingLengthsEachReproduceVanillaGreedy()
    {
        if (CudaAvailability.Reason is { } reason) Assert.Skip(reason);
        using var backend = new CudaBackend();
        using var model = LanguageModel.Load(Kangaroo.Tests.TinyModels.TestModels.DemoDirectory, new ModelLoadOptions { Backend = backend, ContextLength = 1024 });
        var prompts = Enumerable.Range(0, 32).Select(i => string.Concat(Enumerable.Repeat("x = [1, 2]\n", i % 9)) + $"def f{i}(a, b):\n").ToArray();
        var options = new Kangaroo.Generation.GenerationOptions { MaxNewTokens = 48, StopAtEndOfSequence = false };
        var expected = prompts.Select(p => model.Generate(p, options).TokenIds).ToArray();
        var batched = model.GenerateBatch(prompts, options with { Speculation = new Kangaroo.Speculative.KangarooOptions() }, maxSequences: 32);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(expected[i], batched[i].TokenIds);
    }
}

/// <summary>
/// Launch counts: a kernel launched directly counts once, recording counts none, and each replay counts every kernel it
/// holds, so a step's count is the same whether it runs plainly or replays a graph.
/// </summary>
[Collection("GPU")]
public sealed class CudaLaunchCountTests
{
    [Fact]
    public void ReplaysCountTheirRecordedKernelsAndRecordingCountsNone()
    {
        if (CudaAvailability.Reason is { } reason) Assert.Skip(reason);
        using var backend = new CudaBackend();
        using var a = backend.Allocate(256);
        using var b = backend.Allocate(256);
        backend.Upload(new float[256], a);
        void Work()
        {
            backend.Copy(a, 0, b, 0, 256);
            backend.SiluMul(a, b, b, 256);
        }

        long start = backend.KernelLaunches;
        Work();
        long plain = backend.KernelLaunches - start;
        Assert.True(plain >= 1, $"the plain run counted {plain} kernels");

        long beforeRecording = backend.KernelLaunches;
        using var recorded = backend.Capture(Work);
        Assert.Equal(beforeRecording, backend.KernelLaunches);

        for (int replay = 1; replay <= 3; replay++)
        {
            long before = backend.KernelLaunches;
            recorded.Replay();
            Assert.Equal(plain, backend.KernelLaunches - before);
        }
        backend.Synchronize();
    }
}
