using System.Buffers;
using System.Text;

namespace Kangaroo.Tokenization;

/// <summary>
/// What each id turns into when decoding, following SentencePiece's decoder: control pieces are invisible, the
/// unknown piece shows its surface (" ⁇ "), ▁ becomes a space, a run of byte pieces is read as UTF-8 with each
/// byte that does not belong to a valid character becoming U+FFFD, and, when the model adds a dummy prefix, the
/// ▁ that starts the first visible piece is dropped. Immutable; shared by all decoders.
/// </summary>
internal sealed class PieceRenderer
{
    private const char SpaceSymbol = '\u2581';

    private readonly string[] _text;
    private readonly string[] _textAtStart;
    private readonly short[] _byteValue;          // -1: not a byte piece
    private readonly bool[] _keepsStart;          // control pieces: render nothing and leave the "at start" state alone

    /// <param name="invisibleIds">Ids rendered like control pieces whatever their type (the BOS/EOS that tokenizer_config.json names).</param>
    public PieceRenderer(SentencePieceModelProto model, ReadOnlySpan<int> invisibleIds)
    {
        int count = model.Pieces.Length;
        _text = new string[count];
        _textAtStart = new string[count];
        _byteValue = new short[count];
        _keepsStart = new bool[count];
        bool stripsDummyPrefix = model.AddDummyPrefix && !model.TreatWhitespaceAsSuffix;

        for (int id = 0; id < count; id++)
        {
            string piece = model.Pieces[id];
            PieceType type = invisibleIds.Contains(id) ? PieceType.Control : model.Types[id];
            _byteValue[id] = -1;
            switch (type)
            {
                case PieceType.Control:
                    _text[id] = _textAtStart[id] = "";
                    _keepsStart[id] = true;
                    break;
                case PieceType.Unknown:
                    _text[id] = _textAtStart[id] = model.UnknownSurface;
                    break;
                case PieceType.Byte when SentencePieceBpeEncoder.TryParseBytePiece(piece, out byte value):
                    _byteValue[id] = value;
                    _text[id] = _textAtStart[id] = "";
                    break;
                default:
                    _text[id] = piece.Replace(SpaceSymbol, ' ');
                    _textAtStart[id] = stripsDummyPrefix && piece.StartsWith(SpaceSymbol)
                        ? piece[1..].Replace(SpaceSymbol, ' ')
                        : _text[id];
                    break;
            }
        }
    }

    public int Count => _text.Length;

    /// <summary>
    /// Feeds one id through <paramref name="state"/>, appending the text it completes to <paramref name="output"/>.
    /// Ids outside the vocabulary (padded embedding rows) render as nothing, like control pieces.
    /// </summary>
    public void Append(ref DecodeState state, int id, StringBuilder output)
    {
        if ((uint)id >= (uint)_text.Length)
        {
            state.FlushBytes(output);
            return;
        }

        int byteValue = _byteValue[id];
        if (byteValue >= 0)
        {
            state.AtStart = false;
            state.PushByte((byte)byteValue, output);
            return;
        }

        // Any other piece ends a run of byte pieces, complete or not.
        state.FlushBytes(output);
        output.Append(state.AtStart ? _textAtStart[id] : _text[id]);
        if (!_keepsStart[id])
            state.AtStart = false;
    }

    /// <summary>
    /// The text of <paramref name="id"/> when it can be returned as is (no held bytes, not a byte piece), else null.
    /// Lets the streaming decoder hand out the cached piece string without building a new one.
    /// </summary>
    public string? TryAppendWithoutBuffer(ref DecodeState state, int id)
    {
        if (state.PendingCount != 0 || (uint)id >= (uint)_text.Length || _byteValue[id] >= 0)
            return null;
        string text = state.AtStart ? _textAtStart[id] : _text[id];
        if (!_keepsStart[id])
            state.AtStart = false;
        return text;
    }
}

/// <summary>
/// Decoding state between ids: whether the dummy-prefix ▁ may still be dropped, and the bytes of a UTF-8
/// character that byte pieces have started but not finished (at most 3).
/// </summary>
internal struct DecodeState
{
    public bool AtStart;
    private uint _pending;      // up to 3 bytes, first byte lowest
    public int PendingCount { get; private set; }

    public DecodeState(bool atStart) => AtStart = atStart;

    public void PushByte(byte value, StringBuilder output)
    {
        _pending |= (uint)value << (8 * PendingCount);
        PendingCount++;
        Drain(output, final: false);
    }

    /// <summary>Ends the byte run: bytes still waiting for the rest of their character become U+FFFD each.</summary>
    public void FlushBytes(StringBuilder output)
    {
        if (PendingCount != 0)
            Drain(output, final: true);
    }

    private void Drain(StringBuilder output, bool final)
    {
        Span<byte> bytes = stackalloc byte[4];
        for (int i = 0; i < PendingCount; i++)
            bytes[i] = (byte)(_pending >> (8 * i));

        int offset = 0;
        while (offset < PendingCount)
        {
            OperationStatus status = Rune.DecodeFromUtf8(bytes[offset..PendingCount], out Rune rune, out int consumed);
            if (status == OperationStatus.Done)
            {
                AppendRune(output, rune);
                offset += consumed;
            }
            else if (status == OperationStatus.NeedMoreData && !final)
            {
                break;  // a valid start of a character: wait for its remaining bytes
            }
            else
            {
                // SentencePiece replaces each byte that cannot start a valid character on its own, not the whole
                // maximal invalid subsequence as .NET's UTF-8 decoder does.
                output.Append('\uFFFD');
                offset++;
            }
        }

        PendingCount -= offset;
        _pending = offset == 4 ? 0 : _pending >> (8 * offset);
    }

    private static void AppendRune(StringBuilder output, Rune rune)
    {
        if (rune.IsBmp)
        {
            output.Append((char)rune.Value);
        }
        else
        {
            Span<char> pair = stackalloc char[2];
            output.Append(pair[..rune.EncodeToUtf16(pair)]);
        }
    }
}
