using System.Runtime.InteropServices;
using Kangaroo.Backends.Cuda;
using Kangaroo.Backends.Cuda.Launchers;
using Kangaroo.Tests.Backends;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Kernels;

/// <summary>
/// pack_mma_tiles against a plain CPU reference of the tile layout (matmul.cu): every element where the tensor-core
/// kernels' loads expect it, zero padding past the matrix, and only matrices packed.
/// </summary>
[Collection("GPU")]
public sealed class CudaTileLayoutTests : IDisposable
{
    private readonly NativeTensors _tensors = new();

    public void Dispose() => _tensors.Dispose();

    /// <summary>
    /// The tile layout, written from its description rather than from the kernel: blocks of 16 weight rows × one K chunk,
    /// m-tile-major; in a block, thread lane's 16-byte vector u of weight row (lane / 4) + 8r at slot (r · vectors + u) · 32
    /// + lane, holding k = chunk start + 8 (4u + lane % 4) … + 7.
    /// </summary>
    internal static ushort[] ReferencePack(ReadOnlySpan<ushort> rowMajor, int rows, int columns, int vectorsPerRow)
    {
        int chunk = 32 * vectorsPerRow, tiles = (rows + 15) / 16, chunks = (columns + chunk - 1) / chunk;
        var packed = new ushort[tiles * chunks * 16 * chunk];
        int at = 0;
        for (int tile = 0; tile < tiles; tile++)
            for (int c = 0; c < chunks; c++)
                for (int r = 0; r < 2; r++)
                    for (int u = 0; u < vectorsPerRow; u++)
                        for (int lane = 0; lane < 32; lane++)
                            for (int e = 0; e < 8; e++)
                            {
                                int row = tile * 16 + lane / 4 + 8 * r, k = c * chunk + 8 * (4 * u + lane % 4) + e;
                                packed[at++] = row < rows && k < columns ? rowMajor[row * columns + k] : (ushort)0;
                            }
        return packed;
    }

    [Theory]
    [InlineData(DType.F16, 16, 64)]
    [InlineData(DType.F16, 37, 200)]
    [InlineData(DType.BF16, 2, 67)]
    [InlineData(DType.BF16, 130, 1000)]
    public void PackedMatrixMatchesTheReferenceLayout(DType dtype, int rows, int columns)
    {
        if (CudaAvailability.Reason is { } reason) Assert.Skip(reason);
        var random = new Random(rows * 1000 + columns);
        var values = new ushort[rows * columns];
        for (int i = 0; i < values.Length; i++) values[i] = (ushort)random.Next(1, 0x7bff);   // finite, non-zero: padding shows

        using var backend = new CudaBackend(tensorCoreMatMul: true);
        using var weight = (CudaWeight)backend.LoadWeight(_tensors.Create("w", dtype, [rows, columns], MemoryMarshal.AsBytes(values.AsSpan())), rows, columns);

        Assert.True(weight.Tiled);
        ushort[] expected = ReferencePack(values, rows, columns, MatMulLauncher.MmaVectors.Value);
        Assert.Equal(expected.Length * 2L, weight.Memory.ByteLength);
        var actual = new ushort[expected.Length];
        weight.Memory.CopyTo(actual.AsSpan());
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i] == actual[i], $"{rows}×{columns} {dtype}: element {i} of the tile layout is {actual[i]:x4}, expected {expected[i]:x4}");
    }

    [Fact]
    public void OnlyMatricesOnTheTensorCorePathArePacked()
    {
        if (CudaAvailability.Reason is { } reason) Assert.Skip(reason);
        var bytes = new byte[4 * 64 * 2];
        using var tensorCores = new CudaBackend(tensorCoreMatMul: true);
        using var cudaCores = new CudaBackend(tensorCoreMatMul: false);
        using (var normWeight = (CudaWeight)tensorCores.LoadWeight(_tensors.Create("norm", DType.F16, [256], bytes), 1, 256))
            Assert.False(normWeight.Tiled);
        using (var f32 = (CudaWeight)tensorCores.LoadWeight(_tensors.Create("f32", DType.F32, [2, 64], bytes.AsSpan(0, 2 * 64 * 4)), 2, 64))
            Assert.False(f32.Tiled);
        using (var rowMajor = (CudaWeight)cudaCores.LoadWeight(_tensors.Create("m", DType.F16, [4, 64], bytes), 4, 64))
            Assert.False(rowMajor.Tiled);
    }
}
