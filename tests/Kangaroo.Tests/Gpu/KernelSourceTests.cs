using Kangaroo.Backends.Cuda;
using Xunit;

namespace Kangaroo.Tests.Gpu;

/// <summary>The embedded kernel sources, checked without a GPU: every kernel the backend launches is defined by name.</summary>
public class KernelSourceTests
{
    private static readonly string[] Launched =
    [
        "embed_f32", "embed_f16", "embed_bf16", "rmsnorm_f32", "rmsnorm_f16", "rmsnorm_bf16", "add_rmsnorm_f32", "add_rmsnorm_f16",
        "add_rmsnorm_bf16", "matmul_f32", "matmul_f16", "matmul_bf16", "matmul_f32_r1", "matmul_f16_r1", "matmul_bf16_r1", "rope",
        "store_kv_f16", "store_kv_f32", "attention_partial_f16", "attention_partial_f32", "attention_partial_f16_wide", "attention_partial_f32_wide",
        "attention_partial_f16_r1", "attention_partial_f32_r1", "attention_partial_f16_wide_r1", "attention_partial_f32_wide_r1",
        "attention_partial_f16_r2", "attention_partial_f32_r2", "attention_partial_f16_wide_r2", "attention_partial_f32_wide_r2",
        "attention_partial_f16_r4", "attention_partial_f32_r4", "attention_partial_f16_wide_r4", "attention_partial_f32_wide_r4", "attention_combine", "silu_mul",
        "matmul_silu_f32", "matmul_silu_f16", "matmul_silu_bf16", "matmul_silu_f32_r1", "matmul_silu_f16_r1", "matmul_silu_bf16_r1",
        "rope_store_kv_f16", "rope_store_kv_f32", "read_sum", "argmax_probability", "top_k_probability", "kv_move_slots_f16", "kv_move_slots_f32", "copy_rows",
    ];

    [Fact]
    public void EveryLaunchedKernelIsDefinedOnceAndNamesAreIdentifiers()
    {
        var names = CudaKernels.Sources().Values.SelectMany(CudaKernels.KernelNames).ToList();
        Assert.All(names, n => Assert.Matches("^[a-z][a-z0-9_]*$", n));
        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.All(Launched, n => Assert.Contains(n, names));
    }
}
