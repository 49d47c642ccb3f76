using System.Buffers;
using System.Text;

namespace Kangaroo.Tokenization;

/// <summary>
/// What each id turns into when decoding, following SentencePiece's decoder: control pieces are invisible, the
/// unknown piece shows its surface (" ⁇ "), ▁ becomes a space, a run of byte pieces is read as UTF-8 with each
/// byte that does not belong to a valid character becoming U+FFFD, and, when the model adds a dummy prefix, the
/// ▁ that starts the first visible piece is dropped. Immutable; shared by all decoders.
/// </summary>
internal sealed class PieceRenderer : ITokenRenderer
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
        _stripsDummyPrefix = stripsDummyPrefix;

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

    private readonly bool _stripsDummyPrefix;

    public DecodeState Start() => new(_stripsDummyPrefix);

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

/// <summary>What each id turns into when decoding: one tokenizer format's rules (<see cref="PieceRenderer"/>, <see cref="ByteLevelRenderer"/>).</summary>
internal interface ITokenRenderer
{
    /// <summary>Feeds one id through <paramref name="state"/>, appending the text it completes to <paramref name="output"/>.</summary>
    void Append(ref DecodeState state, int id, StringBuilder output);

    /// <summary>The text of <paramref name="id"/> when it can be returned as is (nothing held back), else null.</summary>
    string? TryAppendWithoutBuffer(ref DecodeState state, int id);

    /// <summary>The state a decoding starts in.</summary>
    DecodeState Start();
}

/// <summary>
/// Decoding state between ids: whether the dummy-prefix ▁ may still be dropped, and the bytes of a UTF-8
/// character that byte pieces have started but not finished (at most 3).
/// </summary>
internal struct DecodeState
{
    public bool AtStart;
    private uint _pending;      // up to 3 bytes, first byte lowest
    // How invalid UTF-8 reads: one U+FFFD per byte (SentencePiece) or per maximal invalid subsequence (Rust's
    // from_utf8_lossy, which Hugging Face tokenizers' byte-level decoder uses; .NET's decoder reports the same lengths).
    private readonly bool _maximalSubparts;
    public int PendingCount { get; private set; }

    public DecodeState(bool atStart, bool maximalSubparts = false)
    {
        AtStart = atStart;
        _maximalSubparts = maximalSubparts;
    }

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
                // maximal invalid subsequence as .NET's UTF-8 decoder does; byte-level BPE replaces the subsequence.
                output.Append('\uFFFD');
                offset += _maximalSubparts ? Math.Max(consumed, 1) : 1;
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

/// <summary>
/// Decoding of a byte-level BPE (<see cref="ByteLevelBpe"/>), as Hugging Face tokenizers' ByteLevel decoder with
/// skip_special_tokens: every id's bytes joined and read as UTF-8, invalid sequences as one U+FFFD each; special added
/// tokens and ids no entry names render as nothing and do not interrupt the bytes around them. Immutable; shared.
/// </summary>
internal sealed class ByteLevelRenderer : ITokenRenderer
{
    private readonly byte[][] _bytes;
    private readonly string?[] _whole;   // the id's text when its bytes are complete UTF-8 on their own

    public ByteLevelRenderer(ByteLevelBpe bpe)
    {
        _bytes = new byte[bpe.VocabularySize][];
        _whole = new string?[bpe.VocabularySize];
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        for (int id = 0; id < _bytes.Length; id++)
        {
            _bytes[id] = bpe.IsSpecial[id] ? [] : bpe.TokenBytes[id];
            try { _whole[id] = strict.GetString(_bytes[id]); }
            catch (DecoderFallbackException) { _whole[id] = null; }
        }
    }

    public DecodeState Start() => new(atStart: false, maximalSubparts: true);

    public void Append(ref DecodeState state, int id, StringBuilder output)
    {
        if ((uint)id >= (uint)_bytes.Length) return;
        foreach (byte b in _bytes[id]) state.PushByte(b, output);
    }

    public string? TryAppendWithoutBuffer(ref DecodeState state, int id) =>
        state.PendingCount == 0 && (uint)id < (uint)_bytes.Length ? _whole[id] : null;
}

/// <summary>
/// transformers' clean_up_tokenization, which its decode applies when tokenizer_config.json sets
/// clean_up_tokenization_spaces: the space before . ? ! , and before the contractions n't 'm 's 've 're is dropped, and
/// " ' " becomes "'", each replacement over the whole text in that order. Streaming gives the same text: what follows
/// the last space is held back (a pattern starts at a space), and so is a " ' " that ends at it.
/// </summary>
internal sealed class SpaceCleanup
{
    private static readonly (string From, string To)[] Replacements =
        [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")];

    private readonly StringBuilder _pending = new();

    public static string Apply(string text)
    {
        if (!text.Contains(' ')) return text;
        foreach (var (from, to) in Replacements) text = text.Replace(from, to, StringComparison.Ordinal);
        return text;
    }

    /// <summary>Adds decoded text; returns the cleaned text that no later text can change.</summary>
    public string Push(string text)
    {
        if (text.Length == 0) return "";
        _pending.Append(text);
        int cut = SafeCut();
        if (cut <= 0) return "";
        string ready = _pending.ToString(0, cut);
        _pending.Remove(0, cut);
        return Apply(ready);
    }

    public string Flush()
    {
        string rest = Apply(_pending.ToString());
        _pending.Clear();
        return rest;
    }

    // Everything before the last space is final unless a " ' " ends at that space; with no space at all, everything is.
    private int SafeCut()
    {
        int cut = -1;
        for (int i = _pending.Length - 1; i >= 0; i--)
            if (_pending[i] == ' ') { cut = i; break; }
        if (cut < 0) return _pending.Length;
        while (cut >= 2 && _pending[cut - 1] == '\'' && _pending[cut - 2] == ' ') cut -= 2;
        return cut;
    }
}
