using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Kangaroo.Tokenization;

/// <summary>
/// The model's tokenizer: SentencePiece <c>tokenizer.model</c> (Llama, Llama 2, Mistral style, through
/// Microsoft.ML.Tokenizers), or else a byte-level BPE <c>tokenizer.json</c> (Llama 3, Qwen2 style: <see cref="ByteLevelBpe"/>).
/// BOS/EOS behaviour follows <c>tokenizer_config.json</c> when present, and a tokenizer.json's post-processor template.
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
    private readonly SentencePieceBpeEncoder? _bpe;
    private readonly ByteLevelBpe? _byteLevel;
    private readonly ITokenRenderer _renderer;
    private readonly Func<string, int?> _idOf;

    private TextTokenizer(SentencePieceModelProto model, SentencePieceTokenizer library, int? bosTokenId, int? eosTokenId,
        bool addBosToken, bool addEosToken, string source)
        : this(new PieceRenderer(model, invisibleIds: [bosTokenId ?? -1, eosTokenId ?? -1]), IdLookup(model.Pieces), model.Pieces.Length,
            bosTokenId, eosTokenId, addBosToken, addEosToken, source)
    {
        _normalizer = library.Normalizer;
        _bpe = new SentencePieceBpeEncoder(model);
    }

    private TextTokenizer(ByteLevelBpe bpe, int? bosTokenId, int? eosTokenId, bool addBosToken, bool addEosToken, string source)
        : this(new ByteLevelRenderer(bpe), bpe.IdOf, bpe.VocabularySize, bosTokenId, eosTokenId, addBosToken, addEosToken, source)
    {
        _byteLevel = bpe;
    }

    private TextTokenizer(ITokenRenderer renderer, Func<string, int?> idOf, int vocabularySize, int? bosTokenId, int? eosTokenId,
        bool addBosToken, bool addEosToken, string source)
    {
        _renderer = renderer;
        _idOf = idOf;
        VocabularySize = vocabularySize;
        BosTokenId = bosTokenId;
        EosTokenId = eosTokenId;
        AddBosToken = addBosToken && bosTokenId is not null;
        AddEosToken = addEosToken && eosTokenId is not null;
        Source = source;
    }

    private static Func<string, int?> IdLookup(string[] pieces) => piece => Array.IndexOf(pieces, piece) is var id and >= 0 ? id : null;

    /// <summary>Which file the tokenizer was read from and as what (for <c>inspect</c>).</summary>
    public string Source { get; }

    /// <summary>Whether decoding applies transformers' clean_up_tokenization (tokenizer_config.json's clean_up_tokenization_spaces).</summary>
    public bool CleansUpSpaces { get; private init; }

    /// <summary>The file the tokenizer was read from: <see cref="SentencePieceFileName"/> or <see cref="HuggingFaceFileName"/>.</summary>
    public string FileName => _byteLevel is null ? SentencePieceFileName : HuggingFaceFileName;

    /// <summary>Loads the tokenizer of a model directory. Missing or malformed files are a <see cref="ModelFormatException"/>.</summary>
    public static TextTokenizer Load(string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(modelDirectory);
        if (!Directory.Exists(modelDirectory))
            throw new ModelFormatException(modelDirectory, "model directory not found");

        string modelPath = Path.Combine(modelDirectory, SentencePieceFileName);
        string jsonPath = Path.Combine(modelDirectory, HuggingFaceFileName);
        TokenizerConfig config = TokenizerConfig.Load(modelDirectory);
        string configPath = Path.Combine(modelDirectory, TokenizerConfig.FileName);

        // A SentencePiece tokenizer.model is read when there is one: the tokenizer.json that Llama 2 and Mistral ship beside
        // it is the same tokenizer converted (transformers would load that one). Without it, a byte-level BPE tokenizer.json
        // (Llama 3, Qwen2) is read; other tokenizer.json models are refused by name.
        if (!ModelFiles.Exists(modelPath))
        {
            if (!ModelFiles.Exists(jsonPath))
                throw new ModelFormatException(modelPath, $"not found; the model directory needs a SentencePiece {SentencePieceFileName} or a byte-level BPE {HuggingFaceFileName}");
            using JsonDocument document = ModelFiles.ReadJsonObject(jsonPath, ModelFiles.MaxTokenizerBytes, $"a Hugging Face {HuggingFaceFileName}");
            JsonElement root = document.RootElement;
            if (!ByteLevelBpe.IsByteLevel(root))
                throw new ModelFormatException(jsonPath,
                    $"is not a byte-level BPE tokenizer (model.type BPE with a ByteLevel decoder, as Llama 3 and Qwen2 ship); other " +
                    $"{HuggingFaceFileName} tokenizers (SentencePiece-style BPE, Unigram, WordPiece) are not supported yet. For a " +
                    $"SentencePiece-style model, put its {SentencePieceFileName} next to it.");
            return FromByteLevel(ByteLevelBpe.Parse(jsonPath, root), config, configPath, jsonPath);
        }

        byte[] modelBytes = ReadModelFile(modelPath);
        SentencePieceModelProto model = ParseModel(modelPath, modelBytes);
        SentencePieceTokenizer library = CreateLibraryTokenizer(modelPath, modelBytes);

        int? bos = ResolveSpecialToken(config.BosToken, "bos_token", model.BosId, model, configPath);
        int? eos = ResolveSpecialToken(config.EosToken, "eos_token", model.EosId, model, configPath);
        string source = ModelFiles.Exists(jsonPath)
            ? $"{SentencePieceFileName} (SentencePiece BPE; the {HuggingFaceFileName} beside it is not read)"
            : $"{SentencePieceFileName} (SentencePiece BPE)";
        return new TextTokenizer(model, library, bos, eos, config.AddBosToken ?? true, config.AddEosToken ?? false, source)
        {
            CleansUpSpaces = config.CleanUpTokenizationSpaces == true,
        };
    }

    // BOS and EOS: tokenizer_config.json's names (else none: a byte-level BPE has no built-in ones). Added at encoding:
    // the post-processor template's tokens, as transformers adds them, and add_bos_token / add_eos_token where the
    // config sets them true.
    private static TextTokenizer FromByteLevel(ByteLevelBpe bpe, TokenizerConfig config, string configPath, string jsonPath)
    {
        int? Resolve(SpecialToken token, string name)
        {
            if (!token.IsSpecified || token.Content is null) return null;
            return bpe.IdOf(token.Content) ?? throw new ModelFormatException(configPath, $"{name} \"{token.Content}\" is not a token of {HuggingFaceFileName}");
        }
        int? bos = Resolve(config.BosToken, "bos_token");
        int? eos = Resolve(config.EosToken, "eos_token");
        if (bpe.TemplatePrefix.Length > 1 || bpe.TemplateSuffix.Length > 1)
            throw new ModelFormatException(jsonPath, "post_processor.single frames a sequence with more than one special token on a side: not implemented");
        int? templateBos = bpe.TemplatePrefix.Length == 1 ? bpe.TemplatePrefix[0] : null;
        int? templateEos = bpe.TemplateSuffix.Length == 1 ? bpe.TemplateSuffix[0] : null;
        if (templateBos is int tb && bos is int cb && tb != cb)
            throw new ModelFormatException(jsonPath, $"post_processor.single starts with token {tb} but {TokenizerConfig.FileName}'s bos_token is {cb}");
        if (templateEos is int te && eos is int ce && te != ce)
            throw new ModelFormatException(jsonPath, $"post_processor.single ends with token {te} but {TokenizerConfig.FileName}'s eos_token is {ce}");
        return new TextTokenizer(bpe, bos ?? templateBos, eos ?? templateEos,
            templateBos is not null || config.AddBosToken == true, templateEos is not null || config.AddEosToken == true,
            $"{HuggingFaceFileName} (byte-level BPE, {bpe.VocabularySize} tokens)") { CleansUpSpaces = config.CleanUpTokenizationSpaces == true };
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
        var state = _renderer.Start();
        foreach (int id in ids)
            _renderer.Append(ref state, id, output);
        state.FlushBytes(output);
        return CleansUpSpaces ? SpaceCleanup.Apply(output.ToString()) : output.ToString();
    }

    /// <summary>The id of a vocabulary piece (first occurrence), or null. For diagnostics and tests; linear time.</summary>
    internal int? PieceToId(string piece) => _idOf(piece);

    /// <summary>A new incremental decoder for one generation's output tokens.</summary>
    public StreamingDetokenizer CreateStreamingDecoder() => new(_renderer, CleansUpSpaces ? new SpaceCleanup() : null);

    private void EncodeText(string text, List<int> ids)
    {
        // SentencePiece encodes empty text as nothing; the normalizer would still add the dummy prefix.
        if (text.Length == 0)
            return;
        if (_byteLevel is not null)
        {
            _byteLevel.Encode(text, ids);
            return;
        }
        string normalized = _normalizer?.Normalize(text) ?? text;
        _bpe!.Encode(normalized, ids);
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
    private readonly ITokenRenderer _renderer;
    private readonly SpaceCleanup? _cleanup;
    private readonly StringBuilder _output = new();
    private DecodeState _state;

    internal StreamingDetokenizer(ITokenRenderer renderer, SpaceCleanup? cleanup)
    {
        _renderer = renderer;
        _cleanup = cleanup;
        _state = renderer.Start();
    }

    /// <summary>Adds one token; returns the text that became complete (possibly empty).</summary>
    public string Push(int tokenId)
    {
        string text;
        // The common case (a text piece, no half character waiting) returns the cached piece string.
        if (_renderer.TryAppendWithoutBuffer(ref _state, tokenId) is string whole)
        {
            text = whole;
        }
        else
        {
            _output.Clear();
            _renderer.Append(ref _state, tokenId, _output);
            text = _output.Length == 0 ? "" : _output.ToString();
        }
        return _cleanup is null ? text : _cleanup.Push(text);
    }

    /// <summary>Whatever is still held back (an incomplete UTF-8 sequence becomes U+FFFD).</summary>
    public string Flush()
    {
        _output.Clear();
        _state.FlushBytes(_output);
        string text = _output.Length == 0 ? "" : _output.ToString();
        return _cleanup is null ? text : _cleanup.Push(text) + _cleanup.Flush();
    }
}
