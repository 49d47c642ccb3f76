using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Kangaroo.Tests.Fuzz;

/// <summary>Writes pickle opcodes (protocol 2 unless told): enough to write torch.save's data.pkl and malicious variants of it.</summary>
internal sealed class PickleBuilder
{
    private readonly List<byte> _bytes = [];

    public byte[] ToArray() => [.. _bytes];
    public int Length => _bytes.Count;

    public PickleBuilder Op(byte op)
    {
        _bytes.Add(op);
        return this;
    }

    public PickleBuilder Raw(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes) _bytes.Add(b);
        return this;
    }

    private PickleBuilder U32(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return Raw(b);
    }

    private PickleBuilder U64(ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return Raw(b);
    }

    public PickleBuilder Proto(int version) => Op(0x80).Op((byte)version);
    public PickleBuilder Stop() => Op((byte)'.');
    public PickleBuilder Mark() => Op((byte)'(');
    public PickleBuilder Tuple() => Op((byte)'t');
    public PickleBuilder EmptyTuple() => Op((byte)')');
    public PickleBuilder Reduce() => Op((byte)'R');
    public PickleBuilder Build() => Op((byte)'b');
    public PickleBuilder BinPersId() => Op((byte)'Q');
    public PickleBuilder NewFalse() => Op(0x89);
    public PickleBuilder NewTrue() => Op(0x88);
    public PickleBuilder None() => Op((byte)'N');
    public PickleBuilder EmptyDict() => Op((byte)'}');
    public PickleBuilder EmptyList() => Op((byte)']');
    public PickleBuilder SetItems() => Op((byte)'u');
    public PickleBuilder SetItem() => Op((byte)'s');
    public PickleBuilder Append() => Op((byte)'a');
    public PickleBuilder Appends() => Op((byte)'e');
    public PickleBuilder Obj() => Op((byte)'o');
    public PickleBuilder NewObj() => Op(0x81);
    public PickleBuilder StackGlobal() => Op(0x93);
    public PickleBuilder Memoize() => Op(0x94);
    public PickleBuilder Pop() => Op((byte)'0');
    public PickleBuilder Dup() => Op((byte)'2');
    public PickleBuilder BinPut(byte index) => Op((byte)'q').Op(index);
    public PickleBuilder LongBinPut(uint index) => Op((byte)'r').U32(index);
    public PickleBuilder BinGet(byte index) => Op((byte)'h').Op(index);
    public PickleBuilder LongBinGet(uint index) => Op((byte)'j').U32(index);
    public PickleBuilder Frame(ulong length) => Op(0x95).U64(length);

    /// <summary>GLOBAL 'module name' (protocol 0-3 form: two newline-terminated lines).</summary>
    public PickleBuilder Global(string module, string name) => Op((byte)'c').Raw(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));

    /// <summary>INST 'module name': MARK args INST creates an instance by calling the class.</summary>
    public PickleBuilder Inst(string module, string name) => Op((byte)'i').Raw(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));

    public PickleBuilder Unicode(string s)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(s);
        return Op((byte)'X').U32((uint)utf8.Length).Raw(utf8);
    }

    /// <summary>BINUNICODE with a declared length that need not match the bytes that follow.</summary>
    public PickleBuilder UnicodeDeclared(uint declaredLength, ReadOnlySpan<byte> bytes) => Op((byte)'X').U32(declaredLength).Raw(bytes);

    public PickleBuilder ShortUnicode(string s)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(s);
        return Op(0x8c).Op((byte)utf8.Length).Raw(utf8);
    }

    public PickleBuilder BinBytesDeclared(uint declaredLength, ReadOnlySpan<byte> bytes) => Op((byte)'B').U32(declaredLength).Raw(bytes);
    public PickleBuilder BinUnicode8Declared(ulong declaredLength, ReadOnlySpan<byte> bytes) => Op(0x8d).U64(declaredLength).Raw(bytes);
    public PickleBuilder BinBytes8Declared(ulong declaredLength, ReadOnlySpan<byte> bytes) => Op(0x8e).U64(declaredLength).Raw(bytes);
    public PickleBuilder Long4Declared(uint declaredLength, ReadOnlySpan<byte> bytes) => Op(0x8b).U32(declaredLength).Raw(bytes);

    /// <summary>The shortest integer opcode for the value (BININT1/2, BININT, LONG1).</summary>
    public PickleBuilder Int(long value)
    {
        if (value is >= 0 and < 256) return Op((byte)'K').Op((byte)value);
        if (value is >= 0 and < 65536) return Op((byte)'M').Op((byte)value).Op((byte)(value >> 8));
        if (value is >= int.MinValue and <= int.MaxValue) return Op((byte)'J').U32(unchecked((uint)(int)value));
        var bytes = new System.Numerics.BigInteger(value).ToByteArray();
        return Op(0x8a).Op((byte)bytes.Length).Raw(bytes);
    }

    public PickleBuilder Float(double value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleBigEndian(b, value);
        return Op((byte)'G').Raw(b);
    }

    /// <summary>A tuple of integers, written as torch writes sizes and strides.</summary>
    public PickleBuilder IntTuple(IReadOnlyList<long> values)
    {
        switch (values.Count)
        {
            case 0: return EmptyTuple();
            case 1: Int(values[0]); return Op(0x85);
            case 2: Int(values[0]); Int(values[1]); return Op(0x86);
            case 3: Int(values[0]); Int(values[1]); Int(values[2]); return Op(0x87);
            default:
                Mark();
                foreach (long v in values) Int(v);
                return Tuple();
        }
    }

    /// <summary>module.name(*args) through GLOBAL + REDUCE with string arguments.</summary>
    public PickleBuilder Call(string module, string name, params string[] args)
    {
        Global(module, name);
        Mark();
        foreach (string a in args) Unicode(a);
        Tuple();
        return Reduce();
    }
}

/// <summary>One tensor of a torch.save state dict: its storage (a zip entry data/KEY) and the view on it.</summary>
internal sealed record PtTensor(string Name, string StorageType, string Key, long Numel, long Offset, long[] Size, long[] Stride, byte[] Data)
{
    public string Location { get; init; } = "cpu";
    /// <summary>"v2" (torch._utils._rebuild_tensor_v2), "v3" (with a dtype), "v1" (_rebuild_tensor) or "param" (v2 inside _rebuild_parameter).</summary>
    public string Rebuild { get; init; } = "v2";
    public string DTypeName { get; init; } = "float32";
}

/// <summary>A written zip: its bytes and where its structures are (for mutations that aim at them).</summary>
internal sealed record ZipLayout(byte[] Bytes, IReadOnlyList<(string Name, long LocalHeader, long Data, long Length)> Entries, long CentralDirectory, long EndRecord);

/// <summary>How to write the checkpoint (the defaults are what torch.save writes).</summary>
internal sealed record TorchWriteOptions
{
    public string Prefix { get; init; } = "pytorch_model";
    /// <summary>data.pkl as given instead of the state dict's.</summary>
    public byte[]? Pickle { get; init; }
    public bool DeflatePickle { get; init; }
    public IReadOnlySet<string> DeflateStorages { get; init; } = new HashSet<string>();
    public IReadOnlySet<string> OmitStorages { get; init; } = new HashSet<string>();
    /// <summary>Contents of the byteorder entry; null = no entry.</summary>
    public string? ByteOrder { get; init; } = "little";
    public IReadOnlyList<(string Name, byte[] Data)> ExtraEntries { get; init; } = [];
    public bool Encrypted { get; init; }
    public bool SecondPickle { get; init; }
}

/// <summary>Writes PyTorch ≥ 1.6 checkpoints (what <c>torch.save(state_dict, "pytorch_model.bin")</c> writes): a zip of stored entries.</summary>
internal static class TorchCheckpoint
{
    public static List<PtTensor> FromF32(IEnumerable<(string Name, int[] Shape, float[] Values)> tensors)
    {
        var list = new List<PtTensor>();
        int key = 0;
        foreach (var (name, shape, values) in tensors)
        {
            var data = new byte[values.Length * 4];
            for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4 * i), values[i]);
            long[] size = Array.ConvertAll(shape, s => (long)s);
            var stride = new long[size.Length];
            long running = 1;
            for (int i = size.Length - 1; i >= 0; i--)
            {
                stride[i] = running;
                running *= size[i];
            }
            list.Add(new PtTensor(name, "FloatStorage", (key++).ToString(System.Globalization.CultureInfo.InvariantCulture), values.Length, 0, size, stride, data));
        }
        return list;
    }

    /// <summary>The persistent id tuple ('storage', torch.T, key, location, numel) followed by BINPERSID.</summary>
    public static void WriteStorage(PickleBuilder p, PtTensor t)
    {
        p.Mark().Unicode("storage").Global("torch", t.StorageType).Unicode(t.Key).Unicode(t.Location).Int(t.Numel).Tuple().BinPersId();
    }

    /// <summary>One tensor value as torch pickles it.</summary>
    public static void WriteTensor(PickleBuilder p, PtTensor t)
    {
        if (t.Rebuild == "param") p.Global("torch._utils", "_rebuild_parameter").Mark();
        string rebuild = t.Rebuild switch { "v3" => "_rebuild_tensor_v3", "v1" => "_rebuild_tensor", _ => "_rebuild_tensor_v2" };
        p.Global("torch._utils", rebuild).Mark();
        WriteStorage(p, t);
        p.Int(t.Offset).IntTuple(t.Size).IntTuple(t.Stride);
        if (t.Rebuild != "v1")
        {
            p.NewFalse().Global("collections", "OrderedDict").EmptyTuple().Reduce();
            if (t.Rebuild == "v3") p.Global("torch", t.DTypeName);
        }
        p.Tuple().Reduce();
        if (t.Rebuild == "param") p.NewTrue().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
    }

    /// <summary>
    /// data.pkl of an OrderedDict state dict; <paramref name="value"/> may write an entry's value itself (returns false to
    /// write the tensor as usual).
    /// </summary>
    public static byte[] StateDictPickle(IReadOnlyList<PtTensor> tensors, Func<PickleBuilder, PtTensor, bool>? value = null,
        Action<PickleBuilder>? extraItems = null)
    {
        var p = new PickleBuilder().Proto(2).Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
        foreach (var t in tensors)
        {
            p.Unicode(t.Name);
            if (value is null || !value(p, t)) WriteTensor(p, t);
        }
        extraItems?.Invoke(p);
        return p.SetItems().Stop().ToArray();
    }

    public static ZipLayout Write(IReadOnlyList<PtTensor> tensors, TorchWriteOptions? options = null)
    {
        options ??= new TorchWriteOptions();
        string prefix = options.Prefix.Length == 0 ? "" : options.Prefix + "/";
        var entries = new List<(string Name, byte[] Data, bool Deflate)>
        {
            (prefix + "data.pkl", options.Pickle ?? StateDictPickle(tensors), options.DeflatePickle),
        };
        if (options.SecondPickle) entries.Add(("other/data.pkl", entries[0].Data, false));
        if (options.ByteOrder is { } order) entries.Add((prefix + "byteorder", Encoding.ASCII.GetBytes(order), false));
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!written.Add(t.Key) || options.OmitStorages.Contains(t.Key)) continue;
            entries.Add((prefix + "data/" + t.Key, t.Data, options.DeflateStorages.Contains(t.Key)));
        }
        foreach (var (name, data) in options.ExtraEntries) entries.Add((name, data, false));
        entries.Add((prefix + "version", "3\n"u8.ToArray(), false));
        entries.Add((prefix + ".data/serialization_id", Encoding.ASCII.GetBytes("1234567890123456789012345678901234567890"), false));
        return Zip(entries, options.Encrypted);
    }

    /// <summary>A classic (non-zip64) zip; data of stored entries 64-byte aligned through an extra field, as torch does.</summary>
    public static ZipLayout Zip(IReadOnlyList<(string Name, byte[] Data, bool Deflate)> entries, bool encrypted = false)
    {
        using var output = new MemoryStream();
        var central = new List<(string Name, uint Crc, long Compressed, long Size, long Offset, int Method)>();
        var layout = new List<(string, long, long, long)>();
        foreach (var (name, data, deflate) in entries)
        {
            byte[] stored = deflate ? Deflate(data) : data;
            byte[] nameBytes = Encoding.UTF8.GetBytes(name);
            long offset = output.Position;
            int extraLength = 0;
            if (!deflate)
            {
                long unpadded = offset + 30 + nameBytes.Length + 4;
                extraLength = 4 + (int)((64 - unpadded % 64) % 64);
            }
            uint crc = Crc32(data);
            int method = deflate ? 8 : 0;
            var header = new byte[30];
            BinaryPrimitives.WriteUInt32LittleEndian(header, 0x04034b50);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), 20);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), (ushort)(encrypted ? 1 : 0));
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)method);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(14), crc);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(18), (uint)stored.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(22), (uint)data.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(26), (ushort)nameBytes.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(28), (ushort)extraLength);
            output.Write(header);
            output.Write(nameBytes);
            if (extraLength > 0)
            {
                var extra = new byte[extraLength];
                BinaryPrimitives.WriteUInt16LittleEndian(extra, 0x4246); // "FB": torch's padding field
                BinaryPrimitives.WriteUInt16LittleEndian(extra.AsSpan(2), (ushort)(extraLength - 4));
                output.Write(extra);
            }
            long dataOffset = output.Position;
            output.Write(stored);
            central.Add((name, crc, stored.Length, data.Length, offset, method));
            layout.Add((name, offset, dataOffset, stored.Length));
        }
        long centralOffset = output.Position;
        foreach (var (name, crc, compressed, size, offset, method) in central)
        {
            byte[] nameBytes = Encoding.UTF8.GetBytes(name);
            var header = new byte[46];
            BinaryPrimitives.WriteUInt32LittleEndian(header, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), 20);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), 20);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)(encrypted ? 1 : 0));
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(10), (ushort)method);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), crc);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), (uint)compressed);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(24), (uint)size);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(28), (ushort)nameBytes.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(42), (uint)offset);
            output.Write(header);
            output.Write(nameBytes);
        }
        long centralSize = output.Position - centralOffset;
        long endOffset = output.Position;
        var end = new byte[22];
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(end.AsSpan(8), (ushort)central.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(end.AsSpan(10), (ushort)central.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(end.AsSpan(12), (uint)centralSize);
        BinaryPrimitives.WriteUInt32LittleEndian(end.AsSpan(16), (uint)centralOffset);
        output.Write(end);
        return new ZipLayout(output.ToArray(), layout, centralOffset, endOffset);
    }

    private static byte[] Deflate(byte[] data)
    {
        using var buffer = new MemoryStream();
        using (var deflate = new DeflateStream(buffer, CompressionLevel.Optimal, leaveOpen: true)) deflate.Write(data);
        return buffer.ToArray();
    }

    private static readonly uint[] s_crcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data) c = s_crcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFF;
    }
}
