using System.Buffers.Binary;
using System.Text;

namespace Kangaroo.Tokenization;

internal enum PieceType : byte
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

internal enum SentencePieceModelType
{
    Unigram = 1,
    Bpe = 2,
    Word = 3,
    Char = 4,
}

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> that encoding and decoding need. Microsoft.ML.Tokenizers keeps
/// its parsed proto internal (piece scores and types are not reachable through its API), so the file is read
/// here as well, with just enough protobuf to walk the few fields of sentencepiece_model.proto used.
/// </summary>
internal sealed class SentencePieceModelProto
{
    public required string[] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public required PieceType[] Types { get; init; }

    public SentencePieceModelType ModelType { get; init; } = SentencePieceModelType.Unigram;
    public bool ByteFallback { get; init; }
    public bool TreatWhitespaceAsSuffix { get; init; }
    public int UnknownId { get; init; }
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public string UnknownSurface { get; init; } = " \u2047 ";

    public string NormalizerName { get; init; } = "";
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;
    public bool HasPrecompiledCharsMap { get; init; }

    /// <summary>Parses a serialized ModelProto; <see cref="FormatException"/> when the bytes are not one.</summary>
    public static SentencePieceModelProto Parse(ReadOnlySpan<byte> data)
    {
        var pieces = new List<string>();
        var scores = new List<float>();
        var types = new List<PieceType>();
        TrainerFields trainer = TrainerFields.Defaults;
        NormalizerFields normalizer = NormalizerFields.Defaults;

        var reader = new ProtoReader(data);
        while (reader.TryReadTag(out int field, out int wireType))
        {
            switch (field, wireType)
            {
                case (1, ProtoReader.LengthDelimited):
                    ReadPiece(reader.ReadBytes(), pieces, scores, types);
                    break;
                case (2, ProtoReader.LengthDelimited):
                    trainer = TrainerFields.Read(reader.ReadBytes());
                    break;
                case (3, ProtoReader.LengthDelimited):
                    normalizer = NormalizerFields.Read(reader.ReadBytes());
                    break;
                default:
                    reader.Skip(wireType);
                    break;
            }
        }

        if (pieces.Count == 0)
            throw new FormatException("it holds no vocabulary pieces");

        return new SentencePieceModelProto
        {
            Pieces = pieces.ToArray(),
            Scores = scores.ToArray(),
            Types = types.ToArray(),
            ModelType = trainer.ModelType,
            ByteFallback = trainer.ByteFallback,
            TreatWhitespaceAsSuffix = trainer.TreatWhitespaceAsSuffix,
            UnknownId = trainer.UnknownId,
            BosId = trainer.BosId,
            EosId = trainer.EosId,
            UnknownSurface = trainer.UnknownSurface,
            NormalizerName = normalizer.Name,
            AddDummyPrefix = normalizer.AddDummyPrefix,
            RemoveExtraWhitespaces = normalizer.RemoveExtraWhitespaces,
            EscapeWhitespaces = normalizer.EscapeWhitespaces,
            HasPrecompiledCharsMap = normalizer.HasPrecompiledCharsMap,
        };
    }

    private static void ReadPiece(ReadOnlySpan<byte> message, List<string> pieces, List<float> scores, List<PieceType> types)
    {
        string piece = "";
        float score = 0;
        var type = PieceType.Normal;
        var reader = new ProtoReader(message);
        while (reader.TryReadTag(out int field, out int wireType))
        {
            switch (field, wireType)
            {
                case (1, ProtoReader.LengthDelimited): piece = reader.ReadString(); break;
                case (2, ProtoReader.Fixed32): score = reader.ReadFloat(); break;
                case (3, ProtoReader.Varint):
                    ulong value = reader.ReadVarint();
                    if (value is < 1 or > 6)
                        throw new FormatException($"piece {pieces.Count} has unknown type {value}");
                    type = (PieceType)value;
                    break;
                default: reader.Skip(wireType); break;
            }
        }
        pieces.Add(piece);
        scores.Add(score);
        types.Add(type);
    }

    private record struct TrainerFields(
        SentencePieceModelType ModelType, bool ByteFallback, bool TreatWhitespaceAsSuffix,
        int UnknownId, int BosId, int EosId, string UnknownSurface)
    {
        public static TrainerFields Defaults => new(SentencePieceModelType.Unigram, false, false, 0, 1, 2, " \u2047 ");

        public static TrainerFields Read(ReadOnlySpan<byte> message)
        {
            TrainerFields fields = Defaults;
            var reader = new ProtoReader(message);
            while (reader.TryReadTag(out int field, out int wireType))
            {
                switch (field, wireType)
                {
                    case (3, ProtoReader.Varint): fields.ModelType = (SentencePieceModelType)reader.ReadVarint(); break;
                    case (24, ProtoReader.Varint): fields.TreatWhitespaceAsSuffix = reader.ReadVarint() != 0; break;
                    case (35, ProtoReader.Varint): fields.ByteFallback = reader.ReadVarint() != 0; break;
                    case (40, ProtoReader.Varint): fields.UnknownId = (int)reader.ReadVarint(); break;
                    case (41, ProtoReader.Varint): fields.BosId = (int)reader.ReadVarint(); break;
                    case (42, ProtoReader.Varint): fields.EosId = (int)reader.ReadVarint(); break;
                    case (44, ProtoReader.LengthDelimited): fields.UnknownSurface = reader.ReadString(); break;
                    default: reader.Skip(wireType); break;
                }
            }
            return fields;
        }
    }

    private record struct NormalizerFields(
        string Name, bool HasPrecompiledCharsMap, bool AddDummyPrefix, bool RemoveExtraWhitespaces, bool EscapeWhitespaces)
    {
        public static NormalizerFields Defaults => new("", false, true, true, true);

        public static NormalizerFields Read(ReadOnlySpan<byte> message)
        {
            NormalizerFields fields = Defaults;
            var reader = new ProtoReader(message);
            while (reader.TryReadTag(out int field, out int wireType))
            {
                switch (field, wireType)
                {
                    case (1, ProtoReader.LengthDelimited): fields.Name = reader.ReadString(); break;
                    case (2, ProtoReader.LengthDelimited): fields.HasPrecompiledCharsMap = !reader.ReadBytes().IsEmpty; break;
                    case (3, ProtoReader.Varint): fields.AddDummyPrefix = reader.ReadVarint() != 0; break;
                    case (4, ProtoReader.Varint): fields.RemoveExtraWhitespaces = reader.ReadVarint() != 0; break;
                    case (5, ProtoReader.Varint): fields.EscapeWhitespaces = reader.ReadVarint() != 0; break;
                    default: reader.Skip(wireType); break;
                }
            }
            return fields;
        }
    }
}

/// <summary>Just enough of the protobuf wire format to walk a message; every malformation is a <see cref="FormatException"/>.</summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int Fixed32 = 5;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    public bool TryReadTag(out int field, out int wireType)
    {
        if (_position == _data.Length)
        {
            field = wireType = 0;
            return false;
        }
        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        if (field == 0 || tag >> 3 > int.MaxValue)
            throw new FormatException($"invalid protobuf field tag at byte {_position}");
        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_position >= _data.Length)
                throw new FormatException("protobuf data ends inside a number");
            byte b = _data[_position++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
                return result;
        }
        throw new FormatException($"protobuf number too long at byte {_position}");
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        ulong length = ReadVarint();
        if (length > (ulong)(_data.Length - _position))
            throw new FormatException($"protobuf field at byte {_position} claims {length} bytes, more than remain");
        ReadOnlySpan<byte> bytes = _data.Slice(_position, (int)length);
        _position += (int)length;
        return bytes;
    }

    public string ReadString()
    {
        try
        {
            return StrictUtf8.GetString(ReadBytes());
        }
        catch (DecoderFallbackException)
        {
            throw new FormatException($"protobuf string before byte {_position} is not valid UTF-8");
        }
    }

    public float ReadFloat() => BinaryPrimitives.ReadSingleLittleEndian(Take(4));

    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case Varint: ReadVarint(); break;
            case Fixed64: Take(8); break;
            case LengthDelimited: ReadBytes(); break;
            case Fixed32: Take(4); break;
            default: throw new FormatException($"unsupported protobuf wire type {wireType} before byte {_position}");
        }
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (_data.Length - _position < count)
            throw new FormatException("protobuf data ends inside a field");
        ReadOnlySpan<byte> bytes = _data.Slice(_position, count);
        _position += count;
        return bytes;
    }
}
