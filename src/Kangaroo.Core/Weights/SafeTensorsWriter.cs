using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Kangaroo.Weights;

/// <summary>
/// Writes .safetensors files (tests build tiny models with it; tools convert with it). Tensors are written
/// in the order added; the header is padded with spaces to a multiple of 8 bytes, as the format recommends.
/// </summary>
public sealed class SafeTensorsWriter
{
    private readonly List<(string Name, DType DType, int[] Shape, byte[] Data)> _tensors = [];
    private readonly SortedDictionary<string, string> _metadata = new(StringComparer.Ordinal);

    /// <summary>Adds a tensor from raw little-endian bytes; the length must equal product(shape) × dtype size.</summary>
    public SafeTensorsWriter Add(string name, DType dtype, int[] shape, ReadOnlySpan<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (_tensors.Exists(t => t.Name == name))
            throw new ArgumentException($"tensor \"{name}\" was already added", nameof(name));
        long elements = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"tensor \"{name}\": negative dimension in shape", nameof(shape));
            elements *= d;
        }
        if (elements * dtype.SizeInBytes() != data.Length)
            throw new ArgumentException($"tensor \"{name}\": {data.Length} bytes given, shape [{string.Join(", ", shape)}] × {dtype} needs {elements * dtype.SizeInBytes()}");
        _tensors.Add((name, dtype, (int[])shape.Clone(), data.ToArray()));
        return this;
    }

    /// <summary>Adds a tensor from F32 values, converted to <paramref name="dtype"/> (round to nearest even).</summary>
    public SafeTensorsWriter Add(string name, DType dtype, int[] shape, ReadOnlySpan<float> values) =>
        Add(name, dtype, shape, DTypeConversion.FromFloat32(dtype, values));

    public SafeTensorsWriter AddMetadata(string key, string value)
    {
        _metadata[key] = value;
        return this;
    }

    public void WriteTo(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        WriteTo(stream);
    }

    public void WriteTo(Stream stream)
    {
        byte[] header = BuildHeader();
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var tensor in _tensors) stream.Write(tensor.Data);
    }

    private byte[] BuildHeader()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (_metadata.Count > 0)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in _metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, data) in _tensors)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.SafeTensorsName());
                json.WriteStartArray("shape");
                foreach (int d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += data.Length;
            }
            json.WriteEndObject();
        }
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
