using System.Text.Json;
using Kangaroo.Backends;
using Kangaroo.Backends.Cpu;
using Kangaroo.Backends.Cuda;
using Kangaroo.Model;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Kernels;

/// <summary>
/// Full-model logits against Hugging Face transformers' LlamaForCausalLM on models that transformers itself wrote
/// (tests/gpu/hf_parity.py, run on the GPU machine by tests/gpu/run.sh, which points KANGAROO_HF_PARITY_DIR at them).
/// Skipped where those models are absent.
/// </summary>
[Collection("GPU")]
public class HuggingFaceParityTests
{
    private static string? Directory => Environment.GetEnvironmentVariable("KANGAROO_HF_PARITY_DIR");

    public static TheoryData<string> Cases => ["gqa_f32", "mha_bf16_llama3", "mqa_f16_tied_headdim"];

    [Theory]
    [MemberData(nameof(Cases))]
    public void CpuLogitsMatchTransformers(string name) => Compare(name, () => new CpuBackend(), tolerance: 1e-4);

    [Theory]
    [MemberData(nameof(Cases))]
    public void CudaLogitsMatchTransformers(string name)
    {
        if (CudaAvailability.Reason is { } reason) Assert.Skip(reason);
        Compare(name, () => new CudaBackend(kvCacheType: DType.F32), tolerance: 1e-4);
    }

    /// <summary>
    /// With the default F16 KV cache: keys rounded to 11 bits shift attention scores by |q|·|k|·2⁻¹¹, which sharp
    /// attention in these random models amplifies to about 2% of the largest logit; the bound is the F16-operand one.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void CudaWithF16KvCacheStaysWithinTheF16Bound(string name)
    {
        if (CudaAvailability.Reason is { } reason) Assert.Skip(reason);
        Compare(name, () => new CudaBackend(), tolerance: 3e-2);
    }

    private static void Compare(string name, Func<IComputeBackend> createBackend, double tolerance)
    {
        string root = Directory ?? "";
        if (root.Length == 0) Assert.Skip("KANGAROO_HF_PARITY_DIR is not set (tests/gpu/run.sh sets it on the GPU machine)");
        string dir = Path.Combine(root, name);
        using var parity = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "parity.json")));
        int[] tokens = parity.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        int vocab = parity.RootElement.GetProperty("vocab").GetInt32();
        byte[] raw = File.ReadAllBytes(Path.Combine(dir, "reference_logits.f32"));
        float[] expected = new float[raw.Length / 4];
        Buffer.BlockCopy(raw, 0, expected, 0, raw.Length);
        Assert.Equal(tokens.Length * vocab, expected.Length);

        using var backend = createBackend();
        using var model = LlamaModel.Load(dir, backend);
        float[] actual = model.EvaluateLogits(tokens);
        for (int t = 0; t < tokens.Length; t++)
        {
            double maxError = 0, maxMagnitude = 0;
            for (int v = 0; v < vocab; v++)
            {
                maxError = Math.Max(maxError, Math.Abs(actual[t * vocab + v] - expected[t * vocab + v]));
                maxMagnitude = Math.Max(maxMagnitude, Math.Abs(expected[t * vocab + v]));
            }
            Assert.True(maxError <= tolerance * maxMagnitude,
                $"{name} on {backend.Name}, position {t}: max |error| {maxError:E3}, max |logit| {maxMagnitude:F3}");
        }
    }
}
