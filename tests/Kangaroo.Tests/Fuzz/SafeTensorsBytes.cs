using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Kangaroo.Tests.Fuzz;

/// <summary>A safetensors file split into its parts: the declared header length, the header bytes and the data region.</summary>
internal sealed record StParts(ulong Declared, byte[] Header, byte[] Data)
{
    public static StParts Parse(byte[] file)
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file);
        return new StParts(n, file[8..(8 + (int)n)], file[(8 + (int)n)..]);
    }

    public long HeaderEnd => 8 + Header.Length;

    public static byte[] Compose(ulong declared, ReadOnlySpan<byte> header, ReadOnlySpan<byte> data)
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declared);
        header.CopyTo(bytes.AsSpan(8));
        data.CopyTo(bytes.AsSpan(8 + header.Length));
        return bytes;
    }

    public byte[] Compose() => Compose(Declared, Header, Data);

    /// <summary>The file with a new header (and its true length declared).</summary>
    public byte[] WithHeader(string json, byte[]? data = null)
    {
        byte[] h = Encoding.UTF8.GetBytes(json);
        return Compose((ulong)h.Length, h, data ?? Data);
    }

    public byte[] WithHeader(byte[] header, byte[]? data = null) => Compose((ulong)header.Length, header, data ?? Data);

    public string HeaderText => Encoding.UTF8.GetString(Header);
}

/// <summary>One tensor of a safetensors file: dtype name, shape, raw bytes.</summary>
internal sealed record StTensor(string Name, string DType, int[] Shape, byte[] Data);

internal static class SafeTensorsBytes
{
    /// <summary>The tensors in header order, and the metadata (read independently of the engine's reader).</summary>
    public static (List<StTensor> Tensors, List<(string Key, string Value)> Metadata) Read(byte[] file)
    {
        var parts = StParts.Parse(file);
        using var doc = JsonDocument.Parse(parts.Header);
        var tensors = new List<StTensor>();
        var metadata = new List<(string, string)>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__")
            {
                foreach (var m in p.Value.EnumerateObject()) metadata.Add((m.Name, m.Value.GetString()!));
                continue;
            }
            string dtype = p.Value.GetProperty("dtype").GetString()!;
            int[] shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var offsets = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            tensors.Add(new StTensor(p.Name, dtype, shape, parts.Data[(int)offsets[0]..(int)offsets[1]]));
        }
        return (tensors, metadata);
    }

    /// <summary>A valid safetensors file of these tensors, in this order, header padded with spaces to 8 bytes.</summary>
    public static byte[] Pack(IEnumerable<StTensor> tensors, IReadOnlyList<(string Key, string Value)>? metadata = null)
    {
        var list = tensors.ToList();
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) json.WriteString(k, v);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in list)
            {
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", t.DType);
                json.WriteStartArray("shape");
                foreach (int d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + t.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += t.Data.Length;
            }
            json.WriteEndObject();
        }
        var header = buffer.ToArray().ToList();
        while (header.Count % 8 != 0) header.Add((byte)' ');
        using var data = new MemoryStream();
        foreach (var t in list) data.Write(t.Data);
        return StParts.Compose((ulong)header.Count, header.ToArray(), data.ToArray());
    }

    public static int ElementSize(string dtype) => dtype switch { "F32" or "I32" or "U32" => 4, "F16" or "BF16" or "I16" => 2, "F64" or "I64" => 8, _ => 1 };

    /// <summary>F32 values converted to the dtype's bytes (F32, F16, BF16).</summary>
    public static byte[] Encode(string dtype, float[] values)
    {
        var bytes = new byte[values.Length * ElementSize(dtype)];
        for (int i = 0; i < values.Length; i++)
        {
            switch (dtype)
            {
                case "F32": BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]); break;
                case "F16": BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(2 * i), (Half)values[i]); break;
                case "BF16": BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16)); break;
                default: throw new ArgumentException(dtype);
            }
        }
        return bytes;
    }

    public static float[] DecodeF32(byte[] data)
    {
        var v = new float[data.Length / 4];
        for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(4 * i));
        return v;
    }
}
