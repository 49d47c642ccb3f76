using System.Text;

namespace Kangaroo.Tests.Fuzz;

/// <summary>Just enough protobuf to take a SentencePiece ModelProto apart and put it back together.</summary>
internal static class Proto
{
    public sealed record Field(int Number, int Wire, byte[] Payload, ulong Varint);

    public static List<Field> Parse(ReadOnlySpan<byte> data)
    {
        var fields = new List<Field>();
        int p = 0;
        while (p < data.Length)
        {
            ulong tag = ReadVarint(data, ref p);
            int number = (int)(tag >> 3), wire = (int)(tag & 7);
            switch (wire)
            {
                case 0: fields.Add(new Field(number, wire, [], ReadVarint(data, ref p))); break;
                case 1: fields.Add(new Field(number, wire, data.Slice(p, 8).ToArray(), 0)); p += 8; break;
                case 2:
                {
                    int length = (int)ReadVarint(data, ref p);
                    fields.Add(new Field(number, wire, data.Slice(p, length).ToArray(), 0));
                    p += length;
                    break;
                }
                case 5: fields.Add(new Field(number, wire, data.Slice(p, 4).ToArray(), 0)); p += 4; break;
                default: throw new FormatException($"wire type {wire}");
            }
        }
        return fields;
    }

    public static ulong ReadVarint(ReadOnlySpan<byte> data, ref int p)
    {
        ulong result = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = data[p++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
    }

    public static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            byte b = (byte)(value & 0x7F);
            value >>= 7;
            if (value != 0) b |= 0x80;
            bytes.Add(b);
        } while (value != 0);
        return [.. bytes];
    }

    public static byte[] Tag(int number, int wire) => Varint(((ulong)number << 3) | (uint)wire);

    public static byte[] Encode(IEnumerable<Field> fields)
    {
        using var output = new MemoryStream();
        foreach (var f in fields)
        {
            output.Write(Tag(f.Number, f.Wire));
            switch (f.Wire)
            {
                case 0: output.Write(Varint(f.Varint)); break;
                case 2: output.Write(Varint((ulong)f.Payload.Length)); output.Write(f.Payload); break;
                default: output.Write(f.Payload); break;
            }
        }
        return output.ToArray();
    }

    public static Field Bytes(int number, byte[] payload) => new(number, 2, payload, 0);
    public static Field Number(int number, ulong value) => new(number, 0, [], value);

    /// <summary>A SentencePiece piece message: piece (1), score (2), type (3).</summary>
    public static Field Piece(string piece, float score, int type) =>
        Bytes(1, Encode([Bytes(1, Encoding.UTF8.GetBytes(piece)), new Field(2, 5, BitConverter.GetBytes(score), 0), Number(3, (ulong)type)]));

    /// <summary>Replaces (or adds) a varint field of a sub-message.</summary>
    public static Field WithVarint(Field message, int number, ulong value)
    {
        var inner = Parse(message.Payload);
        int i = inner.FindIndex(f => f.Number == number);
        if (i >= 0) inner[i] = Number(number, value);
        else inner.Add(Number(number, value));
        return message with { Payload = Encode(inner) };
    }
}

/// <summary>tokenizer.model (SentencePiece ModelProto): truncations, byte flips, pieces and trainer/normalizer fields.</summary>
internal sealed class TokenizerModelFamily : Family
{
    private const string File = "tokenizer.model";
    public override string Name => "tokenizer-model";
    public override int Weight => 160;

    private static Action<CaseBuilder> Op(string op, string? arg = null, string baseName = "single") => b => Apply(b.On(b.Bases.Get(baseName)), op, arg);

    private static readonly string[] Ops =
    [
        "truncate", "truncate", "flip", "flip", "flip", "drop-pieces", "add-pieces", "duplicate-piece", "remove-last", "remove-piece", "unk-normal",
        "piece-type", "model-type", "unk-id", "bos-id", "eos-id", "invalid-utf8", "empty-piece", "length-overflow", "wire-type", "unknown-field",
        "charsmap", "normalizer-name", "no-normalizer", "no-trainer", "byte-fallback", "long-varint", "nan-score", "other-file", "insert-bytes",
    ];

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        Op("truncate", "0"), Op("truncate", "1"), Op("truncate", "2"), Op("truncate", "half"), Op("truncate", "len-1"),
        Op("drop-pieces"), Op("add-pieces", "1"), Op("add-pieces", "1", "demo"), Op("add-pieces", "100000"), Op("duplicate-piece"),
        Op("remove-last"), Op("remove-piece", "500"), Op("unk-normal"), Op("piece-type", "0"), Op("piece-type", "7"), Op("piece-type", "99"),
        Op("model-type", "1"), Op("model-type", "3"), Op("model-type", "4"), Op("model-type", "99"),
        Op("unk-id", "99999"), Op("unk-id", "-1"), Op("bos-id", "99999"), Op("bos-id", "-1"), Op("eos-id", "1500"), Op("eos-id", "-1"),
        Op("invalid-utf8"), Op("empty-piece"), Op("length-overflow"), Op("wire-type", "3"), Op("wire-type", "4"), Op("wire-type", "6"),
        Op("wire-type", "7"), Op("unknown-field"), Op("charsmap"), Op("normalizer-name"), Op("no-normalizer"), Op("no-trainer"), Op("byte-fallback"),
        Op("long-varint"), Op("nan-score"), Op("other-file", "unigram"), Op("other-file", "code"), Op("other-file", "json"),
        Op("flip", null, "demo"), Op("truncate", "half", "demo"),
    ];

    public override void Random(CaseBuilder b)
    {
        b.On(b.G.Chance(0.85) ? b.Bases.Single : b.Bases.Demo);
        Apply(b, b.G.Pick(Ops), null);
    }

    private static void Apply(CaseBuilder b, string op, string? arg)
    {
        var g = b.G;
        byte[] bytes = b.Current(File);
        var fields = Proto.Parse(bytes);
        var pieces = fields.Select((f, i) => (f, i)).Where(x => x.f.Number == 1).Select(x => x.i).ToList();
        int configVocab = b.Base.Config.VocabSize;
        void WriteFields(IEnumerable<Proto.Field> f) => b.Write(File, Proto.Encode(f));
        int trainer = fields.FindIndex(f => f.Number == 2);
        int normalizer = fields.FindIndex(f => f.Number == 3);
        ulong Signed(long v) => unchecked((ulong)v);
        long ArgLong(long fallback) => arg is null ? fallback : long.Parse(arg, System.Globalization.CultureInfo.InvariantCulture);

        switch (op)
        {
            case "truncate":
            {
                int at = arg switch { null => g.Int(bytes.Length), "half" => bytes.Length / 2, "len-1" => bytes.Length - 1, _ => int.Parse(arg, System.Globalization.CultureInfo.InvariantCulture) };
                b.Write(File, bytes[..at]);
                if (at == 0) b.Refuse($"{File}: truncated to 0 bytes", "an empty tokenizer");
                else b.Step($"{File}: truncated to {at} of {bytes.Length} bytes");
                return;
            }
            case "flip":
            {
                var copy = (byte[])bytes.Clone();
                int count = g.Int(1, 5);
                var at = new List<int>();
                for (int i = 0; i < count; i++)
                {
                    int p = g.Int(copy.Length);
                    copy[p] ^= (byte)g.Int(1, 256);
                    at.Add(p);
                }
                b.Write(File, copy);
                b.Step($"{File}: {count} byte(s) flipped at {string.Join(", ", at)}");
                return;
            }
            case "insert-bytes":
            {
                int at = g.Int(bytes.Length);
                byte[] junk = g.Bytes(g.Int(1, 9));
                b.Write(File, [.. bytes[..at], .. junk, .. bytes[at..]]);
                b.Step($"{File}: {junk.Length} random bytes inserted at {at}");
                return;
            }
            case "drop-pieces":
                WriteFields(fields.Where(f => f.Number != 1));
                b.Refuse($"{File}: every piece removed (trainer and normalizer specs kept)", "no vocabulary");
                return;
            case "add-pieces":
            {
                int k = (int)ArgLong(g.Pick(new[] { 1, 2, 50 }));
                var added = Enumerable.Range(0, k).Select(i => Proto.Piece($"▁fuzz{i}", -1000 - i, 1));
                var list = fields.ToList();
                list.InsertRange(pieces[^1] + 1, added);
                WriteFields(list);
                b.Refuse($"{File}: {k} piece(s) added (vocabulary {pieces.Count} → {pieces.Count + k}, config.json's vocab_size is {configVocab})", "the tokenizer has more tokens than the model");
                b.Field("vocab_size");
                return;
            }
            case "duplicate-piece":
            {
                var list = fields.ToList();
                list.Insert(pieces[^1] + 1, fields[pieces[100]]);
                WriteFields(list);
                b.Refuse($"{File}: piece 100 appended again as piece {pieces.Count} (vocabulary {pieces.Count + 1} > vocab_size {configVocab})", "the tokenizer has more tokens than the model");
                b.Field("vocab_size");
                return;
            }
            case "remove-last":
                WriteFields(fields.Where((_, i) => i != pieces[^1]));
                b.Step($"{File}: the last piece removed (vocabulary {pieces.Count - 1})");
                return;
            case "remove-piece":
            {
                int k = (int)ArgLong(g.Int(3, pieces.Count));
                WriteFields(fields.Where((_, i) => i != pieces[k]));
                b.Step($"{File}: piece {k} removed (later ids shift by one)");
                return;
            }
            case "unk-normal":
            {
                var list = fields.ToList();
                list[pieces[0]] = Proto.WithVarint(list[pieces[0]], 3, 1);
                WriteFields(list);
                b.Refuse($"{File}: piece 0 (<unk>) typed NORMAL", "no unknown piece");
                return;
            }
            case "piece-type":
            {
                ulong type = (ulong)ArgLong(g.Pick(new[] { 0L, 7, 99, 255 }));
                int k = g.Int(3, pieces.Count);
                var list = fields.ToList();
                list[pieces[k]] = Proto.WithVarint(list[pieces[k]], 3, type);
                WriteFields(list);
                b.Refuse($"{File}: piece {k} has type {type} (valid types are 1-6)", "an invalid piece type");
                return;
            }
            case "model-type" or "unk-id" or "bos-id" or "eos-id" or "byte-fallback":
            {
                int number = op switch { "model-type" => 3, "unk-id" => 40, "bos-id" => 41, "eos-id" => 42, _ => 35 };
                long value = op switch
                {
                    "model-type" => ArgLong(g.Pick(new[] { 1L, 3, 4, 99 })),
                    "byte-fallback" => 0,
                    _ => ArgLong(g.Pick(new[] { -1L, 99999, pieces.Count, 3 })),
                };
                var list = fields.ToList();
                list[trainer] = Proto.WithVarint(list[trainer], number, Signed(value));
                WriteFields(list);
                string d = $"{File}: trainer_spec.{op.Replace('-', '_')} = {value}";
                bool breaks = op switch
                {
                    "model-type" => value != 2,
                    "unk-id" => value < 0 || value >= pieces.Count || value != 0,
                    "bos-id" or "eos-id" => value >= pieces.Count,
                    _ => false,
                };
                if (breaks) b.Refuse(d, "the tokenizer model is inconsistent or not BPE"); else b.Step(d);
                return;
            }
            case "invalid-utf8":
            {
                int k = g.Int(10, pieces.Count);
                var list = fields.ToList();
                var inner = Proto.Parse(list[pieces[k]].Payload);
                inner[inner.FindIndex(f => f.Number == 1)] = Proto.Bytes(1, [0xFF, 0xFE, (byte)'x']);
                list[pieces[k]] = list[pieces[k]] with { Payload = Proto.Encode(inner) };
                WriteFields(list);
                b.Refuse($"{File}: piece {k}'s string is the bytes FF FE 78 (invalid UTF-8)", "an invalid piece");
                return;
            }
            case "empty-piece":
            {
                int k = g.Int(10, pieces.Count);
                var list = fields.ToList();
                var inner = Proto.Parse(list[pieces[k]].Payload);
                inner[inner.FindIndex(f => f.Number == 1)] = Proto.Bytes(1, []);
                list[pieces[k]] = list[pieces[k]] with { Payload = Proto.Encode(inner) };
                WriteFields(list);
                b.Step($"{File}: piece {k}'s string is empty");
                return;
            }
            case "length-overflow":
            {
                // A piece whose length varint claims 2^31 bytes.
                byte[] head = Proto.Encode(fields.Take(pieces[5]));
                byte[] tail = Proto.Encode(fields.Skip(pieces[5]));
                byte[] bad = [.. Proto.Tag(1, 2), .. Proto.Varint(1UL << 31), .. tail];
                b.Write(File, [.. head, .. bad]);
                b.Refuse($"{File}: piece 5's length says 2^31 bytes", "a field longer than the file");
                return;
            }
            case "wire-type":
            {
                int wire = (int)ArgLong(g.Pick(new[] { 3L, 4, 6, 7 }));
                int at = pieces[g.Int(pieces.Count)];
                byte[] head = Proto.Encode(fields.Take(at));
                byte[] tail = Proto.Encode(fields.Skip(at));
                b.Write(File, [.. head, .. Proto.Tag(9, wire), .. tail]);
                b.Refuse($"{File}: a field of wire type {wire} inserted before field {at}", "malformed protobuf");
                return;
            }
            case "unknown-field":
            {
                var list = fields.ToList();
                list.Add(Proto.Number(99, 12345));
                list.Add(Proto.Bytes(100, Encoding.UTF8.GetBytes("future")));
                WriteFields(list);
                b.Step($"{File}: unknown fields 99 (varint) and 100 (bytes) appended");
                return;
            }
            case "charsmap":
            {
                var list = fields.ToList();
                var inner = normalizer >= 0 ? Proto.Parse(list[normalizer].Payload) : [];
                inner.RemoveAll(f => f.Number == 2);
                inner.Add(Proto.Bytes(2, g.Bytes(g.Pick(new[] { 3, 64, 1000 }))));
                if (normalizer >= 0) list[normalizer] = list[normalizer] with { Payload = Proto.Encode(inner) };
                else list.Add(Proto.Bytes(3, Proto.Encode(inner)));
                WriteFields(list);
                b.Step($"{File}: normalizer_spec.precompiled_charsmap is random bytes");
                return;
            }
            case "normalizer-name":
            {
                var list = fields.ToList();
                var inner = normalizer >= 0 ? Proto.Parse(list[normalizer].Payload) : [];
                inner.RemoveAll(f => f.Number == 1);
                string name = g.Pick(new[] { "nfkc", "bogus", "nmt_nfkc_cf", "" });
                inner.Insert(0, Proto.Bytes(1, Encoding.UTF8.GetBytes(name)));
                if (normalizer >= 0) list[normalizer] = list[normalizer] with { Payload = Proto.Encode(inner) };
                WriteFields(list);
                b.Step($"{File}: normalizer_spec.name = \"{name}\"");
                return;
            }
            case "no-normalizer":
                WriteFields(fields.Where(f => f.Number != 3));
                b.Step($"{File}: normalizer_spec removed");
                return;
            case "no-trainer":
                WriteFields(fields.Where(f => f.Number != 2));
                b.Refuse($"{File}: trainer_spec removed (the model type defaults to UNIGRAM)", "not a BPE model");
                return;
            case "long-varint":
            {
                byte[] eleven = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
                b.Write(File, [.. eleven, .. bytes]);
                b.Refuse($"{File}: an 11-byte varint tag prepended", "malformed protobuf");
                return;
            }
            case "nan-score":
            {
                int k = g.Int(3, pieces.Count);
                var list = fields.ToList();
                var inner = Proto.Parse(list[pieces[k]].Payload);
                int s = inner.FindIndex(f => f.Number == 2);
                var nan = new Proto.Field(2, 5, BitConverter.GetBytes(float.NaN), 0);
                if (s >= 0) inner[s] = nan; else inner.Add(nan);
                list[pieces[k]] = list[pieces[k]] with { Payload = Proto.Encode(inner) };
                WriteFields(list);
                b.Step($"{File}: piece {k}'s score is NaN");
                return;
            }
            case "other-file":
            {
                arg ??= g.Pick(new[] { "unigram", "code", "json" });
                if (arg == "json")
                {
                    b.WriteText(File, "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
                    b.Refuse($"{File}: replaced by tokenizer.json-style JSON", "not a SentencePiece model");
                    return;
                }
                string path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer", arg, File);
                b.Write(File, System.IO.File.ReadAllBytes(path));
                if (arg == "unigram") b.Refuse($"{File}: replaced by the unigram fixture tokenizer", "a Unigram model");
                else b.Step($"{File}: replaced by the \"{arg}\" fixture tokenizer (another BPE vocabulary)");
                return;
            }
            default:
                throw new ArgumentException(op);
        }
    }
}
