using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Kangaroo.Weights;

/// <summary>
/// Writes .safetensors files (tests build tiny models with it; tools convert with it). Tensors are written
/// in the order added; the header is padded with spaces to a multiple of 8 bytes, as the format recommends.
/// </summary>
/// <remarks>
/// Two modes. Buffered: <see cref="Add(string, DType, int[], ReadOnlySpan{byte})"/> copies each tensor's bytes and
/// <see cref="WriteTo(Stream)"/> writes everything. Streaming, for files larger than memory:
/// <see cref="Declare"/> records only names, dtypes and shapes, <see cref="WriteHeader"/> writes the header, and the
/// caller then writes each tensor's bytes itself, in declaration order, <see cref="DataByteLength"/> bytes in all.
/// </remarks>
public sealed class SafeTensorsWriter
{
    /// <summary>A tensor of the file; <see cref="Data"/> is null for a declared (streamed) one.</summary>
    private sealed record Entry(string Name, DType DType, int[] Shape, long ByteLength, byte[]? Data);

    private readonly List<Entry> _tensors = [];
    private readonly SortedDictionary<string, string> _metadata = new(StringComparer.Ordinal);

    /// <summary>Adds a tensor from raw little-endian bytes; the length must equal product(shape) × dtype size.</summary>
    public SafeTensorsWriter Add(string name, DType dtype, int[] shape, ReadOnlySpan<byte> data)
    {
        long byteLength = CheckNewTensor(name, dtype, shape);
        if (byteLength != data.Length)
            throw new ArgumentException($"tensor \"{name}\": {data.Length} bytes given, shape [{string.Join(", ", shape)}] × {dtype} needs {byteLength}");
        _tensors.Add(new Entry(name, dtype, (int[])shape.Clone(), byteLength, data.ToArray()));
        return this;
    }

    /// <summary>
    /// Declares a tensor whose bytes the caller will stream after <see cref="WriteHeader"/> (product(shape) × dtype
    /// size of them, after those of the tensors declared before it). A writer with declared tensors cannot
    /// <see cref="WriteTo(Stream)"/>.
    /// </summary>
    public SafeTensorsWriter Declare(string name, DType dtype, int[] shape)
    {
        long byteLength = CheckNewTensor(name, dtype, shape);
        _tensors.Add(new Entry(name, dtype, (int[])shape.Clone(), byteLength, Data: null));
        return this;
    }

    /// <summary>Bytes of tensor data the file holds after its header (all tensors, added or declared).</summary>
    public long DataByteLength
    {
        get
        {
            long total = 0;
            foreach (var tensor in _tensors) total += tensor.ByteLength;
            return total;
        }
    }

    /// <summary>Checks name and shape; returns the tensor's byte length.</summary>
    private long CheckNewTensor(string name, DType dtype, int[] shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (_tensors.Exists(t => t.Name == name))
            throw new ArgumentException($"tensor \"{name}\" was already added", nameof(name));
        long elements = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"tensor \"{name}\": negative dimension in shape", nameof(shape));
            elements *= d;
        }
        return elements * dtype.SizeInBytes();
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
        if (_tensors.Find(t => t.Data is null) is { } declared)
            throw new InvalidOperationException($"tensor \"{declared.Name}\" was declared for streaming: write the header with WriteHeader and stream the data");
        WriteHeader(stream);
        foreach (var tensor in _tensors) stream.Write(tensor.Data!);
    }

    /// <summary>
    /// Writes the 8-byte header length and the header only. In streaming mode the caller then writes every tensor's
    /// bytes in order; with added tensors, use <see cref="WriteTo(Stream)"/> instead.
    /// </summary>
    public void WriteHeader(Stream stream)
    {
        byte[] header = BuildHeader();
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
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
            foreach (var (name, dtype, shape, byteLength, _) in _tensors)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.SafeTensorsName());
                json.WriteStartArray("shape");
                foreach (int d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + byteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += byteLength;
            }
            json.WriteEndObject();
        }
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
