using Kangaroo.Backends;
using Kangaroo.Backends.Cpu;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Backends;

public sealed class CpuBackendConformanceTests : BackendConformanceTests
{
    protected override IComputeBackend CreateBackend() => new CpuBackend();

    [Fact]
    public void DeviceName_NamesProcessorAndThreads()
    {
        using var backend = new CpuBackend(threads: 3);
        Assert.Equal("cpu", backend.Name);
        Assert.EndsWith(", 3 threads", backend.DeviceName);
        Assert.True(backend.DeviceName.Length > ", 3 threads".Length);
    }

    [Fact]
    public void Constructor_RejectsNonPositiveThreads() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuBackend(threads: 0));

    /// <summary>Splitting work over threads must not change a bit: each output is computed by one routine whole.</summary>
    [Fact]
    public void ThreadCount_DoesNotChangeResults()
    {
        const int rows = 5, columns = 384, outFeatures = 300, heads = 4, kvHeads = 2, headDim = 32;
        float[] x = RandomValues(rows * columns);
        byte[] weightBytes = DTypeConversion.FromFloat32(DType.BF16, RandomValues(outFeatures * columns));
        float[] keys = RandomValues(20 * kvHeads * headDim), values = RandomValues(20 * kvHeads * headDim);
        float[] queries = RandomValues(rows * heads * headDim, 3f);
        int[] positions = [3, 19, 0, 11, 19];
        using var tensors = new NativeTensors();
        TensorView view = tensors.Create("w", DType.BF16, [outFeatures, columns], weightBytes);

        (float[] MatMul, float[] Attention) Run(int threads)
        {
            using var backend = new CpuBackend(threads);
            using WeightTensor weight = backend.LoadWeight(view, outFeatures, columns);
            using ComputeBuffer input = backend.Allocate(x.Length), output = backend.Allocate(rows * outFeatures);
            backend.Upload(x, input);
            backend.MatMul(input, weight, output, rows);
            var matMul = new float[rows * outFeatures];
            backend.Download(output, 0, matMul);

            using KvCacheStorage cache = backend.AllocateKvCache(1, 20, kvHeads * headDim);
            using ComputeBuffer k = backend.Allocate(keys.Length), v = backend.Allocate(values.Length);
            using ComputeBuffer q = backend.Allocate(queries.Length), attended = backend.Allocate(queries.Length);
            using IndexBuffer slots = backend.AllocateIndices(20), at = backend.AllocateIndices(rows);
            backend.Upload(keys, k);
            backend.Upload(values, v);
            backend.Upload(queries, q);
            backend.Upload(Enumerable.Range(0, 20).ToArray(), slots);
            backend.Upload(positions, at);
            backend.StoreKv(cache, 0, k, v, slots, 20);
            backend.TreeAttention(q, cache, 0, at, null, 0, attended, rows, heads, kvHeads, headDim);
            var attention = new float[queries.Length];
            backend.Download(attended, 0, attention);
            return (matMul, attention);
        }

        var single = Run(1);
        var many = Run(Math.Max(2, Environment.ProcessorCount));
        AssertBitwiseEqual(single.MatMul, many.MatMul, "MatMul, 1 thread vs many");
        AssertBitwiseEqual(single.Attention, many.Attention, "Attention, 1 thread vs many");
    }
}

public sealed class CpuKernelTests
{
    /// <summary>The F16 widening used by MatMul/Embed is hand-written bit manipulation: check all 65536 inputs.</summary>
    [Fact]
    public void HalfConversion_IsExactForEveryBitPattern()
    {
        var halves = new ushort[65536 + 5];
        for (int i = 0; i < halves.Length; i++)
            halves[i] = (ushort)i;
        var converted = new float[halves.Length];

        CpuKernels.ConvertToFloat32(DType.F16, System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()), converted);

        for (int i = 0; i < halves.Length; i++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf(halves[i]);
            if (float.IsNaN(expected))
                Assert.True(float.IsNaN(converted[i]), $"0x{halves[i]:X4} should widen to NaN");
            else
                Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(converted[i]),
                    $"0x{halves[i]:X4}: {converted[i]:R}, expected {expected:R}");
        }
    }

    [Fact]
    public void BFloat16Conversion_IsExactForEveryBitPattern()
    {
        var values = new ushort[65536 + 5];
        for (int i = 0; i < values.Length; i++)
            values[i] = (ushort)i;
        var converted = new float[values.Length];

        CpuKernels.ConvertToFloat32(DType.BF16, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), converted);

        for (int i = 0; i < values.Length; i++)
            Assert.Equal((uint)values[i] << 16, BitConverter.SingleToUInt32Bits(converted[i]));
    }
}
