using Kangaroo.Weights;

namespace Kangaroo.Backends.Cpu;

/// <summary>Managed SIMD backend (System.Numerics.Tensors), all cores. The reference the GPU backends are tested against.</summary>
public sealed class CpuBackend : IComputeBackend
{
    /// <param name="threads">Worker threads; null = all cores.</param>
    public CpuBackend(int? threads = null) => throw new NotImplementedException();

    public string Name => "cpu";
    public string DeviceName => throw new NotImplementedException();
    public WeightTensor LoadWeight(TensorView source, int rows, int columns) => throw new NotImplementedException();
    public WeightTensor LoadWeight(string name, ReadOnlySpan<float> values, int rows, int columns) => throw new NotImplementedException();
    public ComputeBuffer Allocate(int length) => throw new NotImplementedException();
    public IndexBuffer AllocateIndices(int length) => throw new NotImplementedException();
    public KvCacheStorage AllocateKvCache(int layers, int capacity, int kvWidth) => throw new NotImplementedException();
    public void Upload(ReadOnlySpan<float> source, ComputeBuffer destination, int destinationOffset = 0) => throw new NotImplementedException();
    public void Upload(ReadOnlySpan<int> source, IndexBuffer destination) => throw new NotImplementedException();
    public void Download(ComputeBuffer source, int sourceOffset, Span<float> destination) => throw new NotImplementedException();
    public void Copy(ComputeBuffer source, int sourceOffset, ComputeBuffer destination, int destinationOffset, int count) => throw new NotImplementedException();
    public void Embed(WeightTensor table, IndexBuffer tokens, ComputeBuffer output, int rows) => throw new NotImplementedException();
    public void RmsNorm(ComputeBuffer input, WeightTensor weight, float eps, ComputeBuffer output, int rows, int width) => throw new NotImplementedException();
    public void AddRmsNorm(ComputeBuffer residual, ComputeBuffer delta, WeightTensor weight, float eps, ComputeBuffer normed, int rows, int width) => throw new NotImplementedException();
    public void MatMul(ComputeBuffer input, WeightTensor weight, ComputeBuffer output, int rows) => throw new NotImplementedException();
    public void Rope(ComputeBuffer x, IndexBuffer positions, WeightTensor inverseFrequencies, int rows, int heads, int headDim) => throw new NotImplementedException();
    public void StoreKv(KvCacheStorage cache, int layer, ComputeBuffer keys, ComputeBuffer values, IndexBuffer slots, int rows) => throw new NotImplementedException();
    public void Attention(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim) => throw new NotImplementedException();
    public void SiluMul(ComputeBuffer gate, ComputeBuffer up, ComputeBuffer output, int count) => throw new NotImplementedException();
    public void ArgmaxWithProbability(ComputeBuffer logits, int rows, int vocab, Span<int> tokens, Span<float> probabilities) => throw new NotImplementedException();
    public void Synchronize() => throw new NotImplementedException();
    public void Dispose() => throw new NotImplementedException();
}
