namespace Kangaroo.Weights;

/// <summary>
/// Writes .safetensors files (tests build tiny models with it; tools convert with it). Tensors are written
/// in the order added, 8-byte aligned header as the format recommends.
/// </summary>
public sealed class SafeTensorsWriter
{
    public SafeTensorsWriter() => throw new NotImplementedException();

    /// <summary>Adds a tensor from raw little-endian bytes; the length must equal product(shape) × dtype size.</summary>
    public SafeTensorsWriter Add(string name, DType dtype, int[] shape, ReadOnlySpan<byte> data) => throw new NotImplementedException();

    /// <summary>Adds a tensor from F32 values, converted to <paramref name="dtype"/> (round to nearest even).</summary>
    public SafeTensorsWriter Add(string name, DType dtype, int[] shape, ReadOnlySpan<float> values) => throw new NotImplementedException();

    public SafeTensorsWriter AddMetadata(string key, string value) => throw new NotImplementedException();

    public void WriteTo(string path) => throw new NotImplementedException();

    public void WriteTo(Stream stream) => throw new NotImplementedException();
}
