using System.Text;
using Microsoft.ML.Tokenizers;

namespace Kangaroo.Tokenization;

/// <summary>
/// The model's tokenizer (through Microsoft.ML.Tokenizers): SentencePiece <c>tokenizer.model</c> (Llama style),
/// or <c>tokenizer.json</c> where the library can serve it. BOS/EOS behaviour follows
/// <c>tokenizer_config.json</c> when present.
/// </summary>
/// <remarks>
/// Encoding and decoding give the same ids and text as the sentencepiece library. Microsoft.ML.Tokenizers loads the
/// model and normalizes text; the BPE merges are Kangaroo's own (see <see cref="SentencePieceBpeEncoder"/> for why),
/// and so is decoding (<see cref="PieceRenderer"/>), so that whole-sequence and streaming decoding share one
/// implementation. Only BPE models are accepted: for Unigram models the library's ids differ from sentencepiece's
/// (byte-fallback ids among others), and a model fed wrong ids fails silently. Immutable: safe to share between threads.
/// </remarks>
public sealed class TextTokenizer
{
    public const string SentencePieceFileName = "tokenizer.model";
    public const string HuggingFaceFileName = "tokenizer.json";

    private readonly Normalizer? _normalizer;
    private readonly SentencePieceBpeEncoder _bpe;
    private readonly PieceRenderer _renderer;
    private readonly bool _stripsDummyPrefix;
    private readonly string[] _pieces;

    private TextTokenizer(SentencePieceModelProto model, SentencePieceTokenizer library, int? bosTokenId, int? eosTokenId,
        bool addBosToken, bool addEosToken)
    {
        _normalizer = library.Normalizer;
        _bpe = new SentencePieceBpeEncoder(model);
        _renderer = new PieceRenderer(model, invisibleIds: [bosTokenId ?? -1, eosTokenId ?? -1]);
        _stripsDummyPrefix = model.AddDummyPrefix && !model.TreatWhitespaceAsSuffix;
        _pieces = model.Pieces;
        VocabularySize = model.Pieces.Length;
        BosTokenId = bosTokenId;
        EosTokenId = eosTokenId;
        AddBosToken = addBosToken && bosTokenId is not null;
        AddEosToken = addEosToken && eosTokenId is not null;
    }

    /// <summary>Loads the tokenizer of a model directory. Missing or malformed files are a <see cref="ModelFormatException"/>.</summary>
    public static TextTokenizer Load(string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(modelDirectory);
        if (!Directory.Exists(modelDirectory))
            throw new ModelFormatException(modelDirectory, "model directory not found");

        string modelPath = Path.Combine(modelDirectory, SentencePieceFileName);
        if (!ModelFiles.Exists(modelPath))
        {
            string jsonPath = Path.Combine(modelDirectory, HuggingFaceFileName);
            if (ModelFiles.Exists(jsonPath))
            {
                throw new ModelFormatException(jsonPath,
                    $"this tokenizer format is not supported; Kangaroo reads SentencePiece {SentencePieceFileName} files " +
                    $"(Llama, Llama 2, Mistral, CodeLlama style), and Microsoft.ML.Tokenizers has no reader for Hugging Face " +
                    $"{HuggingFaceFileName} files. Put the model's {SentencePieceFileName} next to it.");
            }
            throw new ModelFormatException(modelPath, $"not found; the model directory needs a SentencePiece {SentencePieceFileName}");
        }

        byte[] modelBytes = ReadModelFile(modelPath);
        SentencePieceModelProto model = ParseModel(modelPath, modelBytes);
        SentencePieceTokenizer library = CreateLibraryTokenizer(modelPath, modelBytes);

        TokenizerConfig config = TokenizerConfig.Load(modelDirectory);
        string configPath = Path.Combine(modelDirectory, TokenizerConfig.FileName);
        int? bos = ResolveSpecialToken(config.BosToken, "bos_token", model.BosId, model, configPath);
        int? eos = ResolveSpecialToken(config.EosToken, "eos_token", model.EosId, model, configPath);
        return new TextTokenizer(model, library, bos, eos, config.AddBosToken ?? true, config.AddEosToken ?? false);
    }

    public int VocabularySize { get; }
    public int? BosTokenId { get; }
    public int? EosTokenId { get; }

    /// <summary>Whether <see cref="Encode(string)"/> prepends BOS (tokenizer_config.json's add_bos_token, default true).</summary>
    public bool AddBosToken { get; }

    /// <summary>Whether encoding appends EOS (tokenizer_config.json's add_eos_token, default false).</summary>
    public bool AddEosToken { get; }

    /// <summary>Token ids of <paramref name="text"/>, with BOS prepended when <see cref="AddBosToken"/> says so.</summary>
    public int[] Encode(string text) => Encode(text, AddBosToken);

    /// <summary>Token ids of <paramref name="text"/>, BOS as asked (and EOS as <see cref="AddEosToken"/> says).</summary>
    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 2 + 2);
        if (addBos && BosTokenId is int bos)
            ids.Add(bos);
        EncodeText(text, ids);
        if (AddEosToken && EosTokenId is int eos)
            ids.Add(eos);
        return ids.ToArray();
    }

    /// <summary>Text of the ids; special tokens (BOS/EOS) are skipped.</summary>
    /// <remarks>
    /// Exactly SentencePiece's decoding: control pieces vanish, the unknown piece shows as " ⁇ ", byte pieces that
    /// do not form valid UTF-8 become U+FFFD (one per byte). Ids outside the vocabulary render as nothing.
    /// </remarks>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var output = new StringBuilder(ids.Length * 4);
        var state = new DecodeState(_stripsDummyPrefix);
        foreach (int id in ids)
            _renderer.Append(ref state, id, output);
        state.FlushBytes(output);
        return output.ToString();
    }

    /// <summary>The id of a vocabulary piece (first occurrence), or null. For diagnostics and tests; linear time.</summary>
    internal int? PieceToId(string piece) => Array.IndexOf(_pieces, piece) is var id and >= 0 ? id : null;

    /// <summary>A new incremental decoder for one generation's output tokens.</summary>
    public StreamingDetokenizer CreateStreamingDecoder() => new(_renderer, _stripsDummyPrefix);

    private void EncodeText(string text, List<int> ids)
    {
        // SentencePiece encodes empty text as nothing; the normalizer would still add the dummy prefix.
        if (text.Length == 0)
            return;
        string normalized = _normalizer?.Normalize(text) ?? text;
        _bpe.Encode(normalized, ids);
    }

    private static byte[] ReadModelFile(string path) =>
        ModelFiles.ReadBounded(path, ModelFiles.MaxTokenizerBytes, $"a SentencePiece {SentencePieceFileName}");

    private static SentencePieceModelProto ParseModel(string path, byte[] bytes)
    {
        if (bytes.Length == 0)
            throw new ModelFormatException(path, "is not a valid SentencePiece model: the file is empty");
        SentencePieceModelProto model;
        try
        {
            model = SentencePieceModelProto.Parse(bytes);
        }
        catch (FormatException e)
        {
            throw new ModelFormatException(path, $"is not a valid SentencePiece model: {e.Message}", e);
        }

        if (model.ModelType != SentencePieceModelType.Bpe)
            throw new ModelFormatException(path, $"SentencePiece {model.ModelType} models are not supported; Kangaroo reads BPE models (Llama style)");
        int count = model.Pieces.Length;
        if ((uint)model.UnknownId >= (uint)count || model.Types[model.UnknownId] != PieceType.Unknown)
            throw new ModelFormatException(path, $"is not a valid SentencePiece model: unk_id {model.UnknownId} is not an unknown piece");
        if (model.BosId >= count || model.EosId >= count)
            throw new ModelFormatException(path, $"is not a valid SentencePiece model: bos_id {model.BosId} or eos_id {model.EosId} is beyond the {count} pieces");
        return model;
    }

    private static SentencePieceTokenizer CreateLibraryTokenizer(string path, byte[] bytes)
    {
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            return SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The library reports malformed models with assorted exception types; the user needs only the file.
            throw new ModelFormatException(path, $"is not a valid SentencePiece model: {e.Message}", e);
        }
    }

    private static int? ResolveSpecialToken(SpecialToken token, string name, int modelId, SentencePieceModelProto model, string configPath)
    {
        if (!token.IsSpecified)
            return modelId >= 0 ? modelId : null;
        if (token.Content is null)
            return null;
        int id = Array.IndexOf(model.Pieces, token.Content);
        if (id < 0)
            throw new ModelFormatException(configPath, $"{name} \"{token.Content}\" is not a piece of {SentencePieceFileName}");
        return id;
    }
}

/// <summary>
/// Turns generated token ids into text pieces as they arrive. A piece never ends inside a UTF-8 character
/// split across byte-fallback tokens, and the concatenation of all pieces plus <see cref="Flush"/> equals
/// <see cref="TextTokenizer.Decode"/> of all ids.
/// </summary>
/// <remarks>Not thread-safe: one instance belongs to one generation.</remarks>
public sealed class StreamingDetokenizer
{
    private readonly PieceRenderer _renderer;
    private readonly StringBuilder _output = new();
    private DecodeState _state;

    internal StreamingDetokenizer(PieceRenderer renderer, bool stripsDummyPrefix)
    {
        _renderer = renderer;
        _state = new DecodeState(stripsDummyPrefix);
    }

    /// <summary>Adds one token; returns the text that became complete (possibly empty).</summary>
    public string Push(int tokenId)
    {
        // The common case (a text piece, no half character waiting) returns the cached piece string.
        if (_renderer.TryAppendWithoutBuffer(ref _state, tokenId) is string text)
            return text;
        _output.Clear();
        _renderer.Append(ref _state, tokenId, _output);
        return _output.Length == 0 ? "" : _output.ToString();
    }

    /// <summary>Whatever is still held back (an incomplete UTF-8 sequence becomes U+FFFD).</summary>
    public string Flush()
    {
        _output.Clear();
        _state.FlushBytes(_output);
        return _output.Length == 0 ? "" : _output.ToString();
    }
}
