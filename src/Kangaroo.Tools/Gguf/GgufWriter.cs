using System.Text;

namespace Kangaroo.Gguf;

/// <summary>The tensor element types GGUF files written here hold (ggml_type values).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    BF16 = 30,
}

/// <summary>
/// A GGUF (version 3) file, written in one pass: the header, the metadata key/values, the tensor infos, then each
/// tensor's bytes at an offset aligned to <see cref="Alignment"/>. Little-endian throughout, as the format requires. Only
/// the value kinds a Llama export needs: unsigned and signed 32-bit integers, F32, booleans, strings and arrays of
/// strings, F32 and 32-bit integers.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>general.alignment's default: tensor data starts, and each tensor's bytes start, at multiples of it.</summary>
    public const int Alignment = 32;

    private const uint Magic = 0x46554747;   // "GGUF" read as a little-endian uint32
    private const uint Version = 3;

    private enum ValueType : uint { UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9 }

    private readonly List<(string Key, Action<BinaryWriter> Write)> _metadata = [];
    private readonly List<Tensor> _tensors = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);

    private sealed record Tensor(string Name, long[] Shape, GgmlType Type, long ByteLength, Action<Stream> WriteData);

    public void Add(string key, uint value) => AddValue(key, w => { w.Write((uint)ValueType.UInt32); w.Write(value); });
    public void Add(string key, int value) => AddValue(key, w => { w.Write((uint)ValueType.Int32); w.Write(value); });
    public void Add(string key, float value) => AddValue(key, w => { w.Write((uint)ValueType.Float32); w.Write(value); });
    public void Add(string key, bool value) => AddValue(key, w => { w.Write((uint)ValueType.Bool); w.Write((byte)(value ? 1 : 0)); });
    public void Add(string key, string value) => AddValue(key, w => { w.Write((uint)ValueType.String); WriteString(w, value); });

    public void Add(string key, IReadOnlyList<string> values) => AddValue(key, w =>
    {
        WriteArrayHeader(w, ValueType.String, values.Count);
        foreach (string value in values) WriteString(w, value);
    });

    public void Add(string key, IReadOnlyList<float> values) => AddValue(key, w =>
    {
        WriteArrayHeader(w, ValueType.Float32, values.Count);
        foreach (float value in values) w.Write(value);
    });

    public void Add(string key, IReadOnlyList<int> values) => AddValue(key, w =>
    {
        WriteArrayHeader(w, ValueType.Int32, values.Count);
        foreach (int value in values) w.Write(value);
    });

    /// <summary>
    /// A tensor of <paramref name="shape"/> in row-major order (outermost first, as PyTorch writes shapes; GGUF stores the
    /// dimensions innermost first). <paramref name="writeData"/> writes exactly its bytes when the file is written.
    /// </summary>
    public void AddTensor(string name, IReadOnlyList<int> shape, GgmlType type, Action<Stream> writeData)
    {
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"tensor {name} is already in the file", nameof(name));
        long elements = shape.Aggregate(1L, (n, d) => n * d);
        long bytes = elements * (type == GgmlType.F32 ? 4 : 2);
        _tensors.Add(new Tensor(name, [.. shape.Select(d => (long)d)], type, bytes, writeData));
    }

    public void Write(Stream output)
    {
        using var w = new BinaryWriter(output, Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, write) in _metadata)
        {
            WriteString(w, key);
            write(w);
        }
        long offset = 0;
        foreach (var tensor in _tensors)
        {
            WriteString(w, tensor.Name);
            w.Write((uint)tensor.Shape.Length);
            for (int d = tensor.Shape.Length - 1; d >= 0; d--) w.Write((ulong)tensor.Shape[d]);
            w.Write((uint)tensor.Type);
            w.Write((ulong)offset);
            offset = AlignUp(offset + tensor.ByteLength);
        }
        w.Flush();
        Pad(output);
        long dataStart = output.Position;
        foreach (var tensor in _tensors)
        {
            long before = output.Position;
            tensor.WriteData(output);
            if (output.Position - before != tensor.ByteLength)
                throw new InvalidOperationException($"tensor {tensor.Name}: {output.Position - before} bytes written, its shape needs {tensor.ByteLength}");
            Pad(output, dataStart);
        }
    }

    private void AddValue(string key, Action<BinaryWriter> write)
    {
        if (!_keys.Add(key)) throw new ArgumentException($"metadata key {key} is already in the file", nameof(key));
        _metadata.Add((key, write));
    }

    private static void WriteArrayHeader(BinaryWriter w, ValueType itemType, int count)
    {
        w.Write((uint)ValueType.Array);
        w.Write((uint)itemType);
        w.Write((ulong)count);
    }

    private static void WriteString(BinaryWriter w, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static long AlignUp(long n) => (n + Alignment - 1) / Alignment * Alignment;

    private static void Pad(Stream output, long origin = 0)
    {
        long used = output.Position - origin;
        int padding = (int)(AlignUp(used) - used);
        for (int i = 0; i < padding; i++) output.WriteByte(0);
    }
}
