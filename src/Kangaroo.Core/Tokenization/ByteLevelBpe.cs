using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Kangaroo.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> whose model is byte-level BPE (GPT-2 style: Llama 3, Qwen2/2.5/3): the text is
/// split at the added tokens, each stretch between them normalized (none, NFC, NFKC, NFD, NFKD, by
/// <see cref="UnicodeNormalizer"/>, since .NET's own does nothing under InvariantGlobalization), cut into words by the
/// pre-tokenizer's regex, each word's UTF-8 bytes written as the byte-level alphabet's characters, and each word merged
/// pair by pair in merge-rank order (or taken whole when the vocabulary has it and the model says
/// <c>ignore_merges</c>). The post-processor's template says which special tokens frame a sequence. Anything else a
/// tokenizer.json can say is refused by name, so a file is never half understood. Immutable apart from a word cache;
/// safe to share between threads.
/// </summary>
internal sealed class ByteLevelBpe
{
    // GPT-2's pre-tokenizer pattern: what ByteLevel with use_regex = true splits by.
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private const int MaxCachedWords = 1 << 16;
    // A pattern from the file that backtracks without end must end in an error, not a hung request.
    private static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(2);

    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> _merges;
    private readonly int[] _byteIds = new int[256];
    private readonly Regex _words;
    private readonly bool _addPrefixSpace;
    private readonly bool _ignoreMerges;
    private readonly NormalizationForm? _normalization;
    private readonly AddedToken[] _added;          // longest content first, for leftmost-longest matching
    private readonly SearchValues<char> _addedFirstChars;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private int _cachedWords;

    private readonly string _path;

    private ByteLevelBpe(string path, Dictionary<string, int> vocabulary, Dictionary<(int, int), (int, int)> merges, Regex words, bool addPrefixSpace,
        bool ignoreMerges, NormalizationForm? normalization, AddedToken[] added, byte[][] tokenBytes, bool[] special,
        int[] prefix, int[] suffix)
    {
        _path = path;
        _vocabulary = vocabulary;
        _merges = merges;
        _words = words;
        _addPrefixSpace = addPrefixSpace;
        _ignoreMerges = ignoreMerges;
        _normalization = normalization;
        _added = added;
        _addedFirstChars = SearchValues.Create([.. added.Select(a => a.Content[0]).Distinct()]);
        TokenBytes = tokenBytes;
        IsSpecial = special;
        TemplatePrefix = prefix;
        TemplateSuffix = suffix;
        for (int b = 0; b < 256; b++) _byteIds[b] = vocabulary[ByteAlphabet.Chars[b].ToString()];
    }

    /// <summary>Each id's bytes when decoded (an added token's content as UTF-8); empty for ids no entry names.</summary>
    public byte[][] TokenBytes { get; }

    /// <summary>Added tokens marked special: skipped when decoding, as transformers' skip_special_tokens does.</summary>
    public bool[] IsSpecial { get; }

    /// <summary>The post-processor template's special tokens before and after a single sequence.</summary>
    public int[] TemplatePrefix { get; }
    public int[] TemplateSuffix { get; }

    public int VocabularySize => TokenBytes.Length;

    /// <summary>The id of a vocabulary entry or added token, or null.</summary>
    public int? IdOf(string token)
    {
        foreach (var a in _added)
            if (a.Content == token) return a.Id;
        return _vocabulary.TryGetValue(token, out int id) ? id : null;
    }

    /// <summary>Whether the file is one this reader serves: a BPE model with the byte-level decoder.</summary>
    public static bool IsByteLevel(JsonElement root) =>
        root.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.Object
        && model.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "BPE"
        && root.TryGetProperty("decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object
        && decoder.TryGetProperty("type", out var decoderType) && decoderType.ValueKind == JsonValueKind.String
        && decoderType.GetString() == "ByteLevel";

    public static ByteLevelBpe Parse(string path, JsonElement root)
    {
        var reader = new Reader(path);
        JsonElement model = reader.Object(root, "model");
        string modelType = reader.String(model, "type", "model.type");
        if (modelType != "BPE")
            throw reader.Error($"model.type is \"{modelType}\": this reader serves byte-level BPE tokenizer.json files (Llama 3, Qwen2 style)");
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind is not JsonValueKind.Null)
            throw reader.Error("model.dropout is set: BPE dropout samples merges at random, which inference does not do; expected null");
        if (reader.OptionalBool(model, "byte_fallback", "model.byte_fallback") == true)
            throw reader.Error("model.byte_fallback is true in a byte-level BPE: expected false (every byte is already a token)");
        foreach (string affix in (string[])["continuing_subword_prefix", "end_of_word_suffix"])
            if (model.TryGetProperty(affix, out var value) && value.ValueKind == JsonValueKind.String && value.GetString()!.Length > 0)
                throw reader.Error($"model.{affix} is \"{value.GetString()}\": not implemented for byte-level BPE; expected null or \"\"");
        bool ignoreMerges = reader.OptionalBool(model, "ignore_merges", "model.ignore_merges") ?? false;

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        JsonElement vocab = reader.Object(model, "vocab", "model.vocab");
        foreach (JsonProperty entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw reader.Error($"model.vocab[\"{entry.Name}\"] must be an id ≥ 0, found {entry.Value.GetRawText()}");
            if (!vocabulary.TryAdd(entry.Name, id))
                throw reader.Error($"model.vocab lists \"{entry.Name}\" twice");
        }
        for (int b = 0; b < 256; b++)
            if (!vocabulary.ContainsKey(ByteAlphabet.Chars[b].ToString()))
                throw reader.Error($"model.vocab lacks the byte-level token for byte 0x{b:X2} (\"{ByteAlphabet.Chars[b]}\"): not a byte-level BPE vocabulary");

        var merges = new Dictionary<(int, int), (int, int)>();
        JsonElement mergeList = reader.Array(model, "merges", "model.merges");
        int rank = 0;
        foreach (JsonElement merge in mergeList.EnumerateArray())
        {
            (string left, string right) = merge.ValueKind switch
            {
                JsonValueKind.String when merge.GetString()!.Split(' ') is [var l, var r] => (l, r),
                JsonValueKind.Array when merge.GetArrayLength() == 2 && merge[0].ValueKind == JsonValueKind.String
                    && merge[1].ValueKind == JsonValueKind.String => (merge[0].GetString()!, merge[1].GetString()!),
                _ => throw reader.Error($"model.merges[{rank}] must be \"left right\" or [\"left\", \"right\"], found {merge.GetRawText()}"),
            };
            if (!vocabulary.TryGetValue(left, out int leftId) || !vocabulary.TryGetValue(right, out int rightId))
                throw reader.Error($"model.merges[{rank}] (\"{left}\" \"{right}\") names a token that model.vocab lacks");
            if (!vocabulary.TryGetValue(left + right, out int mergedId))
                throw reader.Error($"model.merges[{rank}] makes \"{left + right}\", which model.vocab lacks");
            // A repeated pair keeps its last rank, as Hugging Face tokenizers' merge map (and transformers.js's) does.
            merges[(leftId, rightId)] = (rank, mergedId);
            rank++;
        }

        NormalizationForm? normalization = ParseNormalizer(reader, root);
        (Regex words, bool addPrefixSpace) = ParsePreTokenizer(reader, root);

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedTokens) && addedTokens.ValueKind != JsonValueKind.Null)
        {
            if (addedTokens.ValueKind != JsonValueKind.Array) throw reader.Error("added_tokens must be an array");
            int index = 0;
            foreach (JsonElement token in addedTokens.EnumerateArray())
            {
                string where = $"added_tokens[{index++}]";
                int id = reader.Int(token, "id", where + ".id");
                string content = reader.String(token, "content", where + ".content");
                if (content.Length == 0) throw reader.Error($"{where}.content is empty");
                if (reader.OptionalBool(token, "single_word", where + ".single_word") == true)
                    throw reader.Error($"{where} (\"{content}\") has single_word = true: not implemented; expected false");
                bool normalized = reader.OptionalBool(token, "normalized", where + ".normalized") ?? false;
                if (normalized && normalization is not null && UnicodeNormalizer.Normalize(content, normalization.Value) != content)
                    throw reader.Error($"{where} (\"{content}\") is matched after normalization and changes under it: not implemented");
                added.Add(new AddedToken(id, content, reader.OptionalBool(token, "special", where + ".special") ?? false,
                    reader.OptionalBool(token, "lstrip", where + ".lstrip") ?? false, reader.OptionalBool(token, "rstrip", where + ".rstrip") ?? false));
            }
        }

        // Ids are dense: every id below the number of distinct tokens. A far larger id would size the tables by it.
        int distinct = vocabulary.Count + added.Count(a => !vocabulary.ContainsKey(a.Content));
        int size = Math.Max(vocabulary.Values.Max(), added.Count == 0 ? -1 : added.Max(a => a.Id)) + 1;
        if (size > distinct)
            throw reader.Error($"token ids reach {size - 1} but there are {distinct} tokens: ids must be 0 … {distinct - 1}, each used once");
        var tokenBytes = new byte[size][];
        var special = new bool[size];
        foreach (var (token, id) in vocabulary)
        {
            if (tokenBytes[id] is not null) throw reader.Error($"model.vocab gives id {id} to two tokens (one is \"{token}\")");
            tokenBytes[id] = ByteAlphabet.ToBytes(token);
        }
        foreach (var a in added)
        {
            if (vocabulary.TryGetValue(a.Content, out int existing) && existing != a.Id)
                throw reader.Error($"added token \"{a.Content}\" has id {a.Id} but model.vocab gives it {existing}");
            // Decoding maps an added token's characters through the byte alphabet when all are in it, else takes its UTF-8.
            if (!vocabulary.ContainsKey(a.Content) && tokenBytes[a.Id] is not null)
                throw reader.Error($"added token \"{a.Content}\" has id {a.Id}, which another token has");
            tokenBytes[a.Id] = a.Content.All(ByteAlphabet.Contains) ? ByteAlphabet.ToBytes(a.Content) : Encoding.UTF8.GetBytes(a.Content);
            special[a.Id] = a.Special;
        }
        for (int id = 0; id < size; id++) tokenBytes[id] ??= [];

        (int[] prefix, int[] suffix) = ParsePostProcessor(reader, root, vocabulary, added);
        AddedToken[] byLength = [.. added.OrderByDescending(a => a.Content.Length).ThenBy(a => a.Id)];
        return new ByteLevelBpe(path, vocabulary, merges, words, addPrefixSpace, ignoreMerges, normalization, byLength, tokenBytes, special, prefix, suffix);
    }

    /// <summary>The ids of <paramref name="text"/>, without the template's special tokens.</summary>
    public void Encode(string text, List<int> ids)
    {
        try
        {
            EncodeText(text, ids);
        }
        catch (RegexMatchTimeoutException)
        {
            throw new ModelFormatException(_path, $"the pre-tokenizer's pattern ran over {MatchTimeout.TotalSeconds:F0} s on a text of " +
                $"{text.Length} characters: it backtracks without end; Hugging Face's files use patterns that do not");
        }
    }

    private void EncodeText(string text, List<int> ids)
    {
        int start = 0;
        while (start < text.Length)
        {
            (int at, AddedToken? token) = NextAddedToken(text, start);
            int end = at;
            int next = token is null ? text.Length : at + token.Content.Length;
            if (token is { LeftStrip: true }) while (end > start && char.IsWhiteSpace(text[end - 1])) end--;
            if (end > start) EncodeSegment(text[start..end], ids);
            if (token is null) break;
            ids.Add(token.Id);
            if (token.RightStrip) while (next < text.Length && char.IsWhiteSpace(text[next])) next++;
            start = next;
        }
    }

    private (int At, AddedToken? Token) NextAddedToken(string text, int start)
    {
        if (_added.Length == 0) return (text.Length, null);
        // Only positions holding some added token's first character are tried.
        for (int i = start; i < text.Length; i++)
        {
            int next = text.AsSpan(i).IndexOfAny(_addedFirstChars);
            if (next < 0) break;
            i += next;
            foreach (var token in _added)   // longest first: leftmost-longest
                if (string.CompareOrdinal(text, i, token.Content, 0, token.Content.Length) == 0)
                    return (i, token);
        }
        return (text.Length, null);
    }

    // A stretch between added tokens: normalized, given the prefix space, cut into words, each word merged.
    private void EncodeSegment(string segment, List<int> ids)
    {
        if (_normalization is { } form) segment = UnicodeNormalizer.Normalize(segment, form);
        if (segment.Length == 0) return;
        if (_addPrefixSpace && segment[0] != ' ') segment = " " + segment;
        if (!segment.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            for (Match m = _words.Match(segment); m.Success; m = m.NextMatch())
                EncodeWord(m.Value, ids);
            return;
        }
        // .NET's regex sees a character outside the BMP as two surrogates (category Cs), where Hugging Face's sees one
        // code point of its own category (𐌀 a letter, 🦘 a symbol), and quantifiers like \p{N}{1,3} count code points.
        // So the words are found in a stand-in string of one character per code point, each character outside the BMP
        // replaced by a BMP character of its class, and cut from the real text at the same code points.
        var standIn = new StringBuilder(segment.Length);
        var starts = new List<int>(segment.Length + 1);
        for (int i = 0; i < segment.Length; i += char.IsSurrogatePair(segment, i) ? 2 : 1)
        {
            starts.Add(i);
            standIn.Append(char.IsSurrogatePair(segment, i) ? StandIn(char.ConvertToUtf32(segment[i], segment[i + 1]))
                : char.IsSurrogate(segment[i]) ? '\uFFFD' : segment[i]);   // a lone surrogate is U+FFFD in UTF-8
        }
        starts.Add(segment.Length);
        for (Match m = _words.Match(standIn.ToString()); m.Success; m = m.NextMatch())
            EncodeWord(segment[starts[m.Index]..starts[m.Index + m.Length]], ids);
    }

    // A BMP character of the same class as the pre-tokenizer patterns see it: letter, number, space, or anything else.
    private static char StandIn(int codePoint) => CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => '\u4E00',
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => '\u0660',
        UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => '\u0300',
        _ => '\uE000',
    };

    private void EncodeWord(string word, List<int> ids)
    {
        if (_cache.TryGetValue(word, out int[]? cached))
        {
            ids.AddRange(cached);
            return;
        }
        byte[] bytes = Encoding.UTF8.GetBytes(word);
        int[] result;
        if (_ignoreMerges && _vocabulary.TryGetValue(ByteAlphabet.FromBytes(bytes), out int whole))
        {
            result = [whole];
        }
        else
        {
            var symbols = new List<int>(bytes.Length);
            foreach (byte b in bytes) symbols.Add(_byteIds[b]);
            // Merge the adjacent pair of lowest rank (leftmost among equal ranks) until no pair has one.
            while (symbols.Count > 1)
            {
                int best = -1, bestRank = int.MaxValue, bestMerged = 0;
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (_merges.TryGetValue((symbols[i], symbols[i + 1]), out var merge) && merge.Rank < bestRank)
                        (best, bestRank, bestMerged) = (i, merge.Rank, merge.Merged);
                if (best < 0) break;
                symbols[best] = bestMerged;
                symbols.RemoveAt(best + 1);
            }
            result = [.. symbols];
        }
        // ConcurrentDictionary.Count takes every lock; a counter of its own keeps the bound cheap.
        if (Volatile.Read(ref _cachedWords) < MaxCachedWords && _cache.TryAdd(word, result)) Interlocked.Increment(ref _cachedWords);
        ids.AddRange(result);
    }

    private static NormalizationForm? ParseNormalizer(Reader reader, JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind == JsonValueKind.Null) return null;
        string type = reader.String(normalizer, "type", "normalizer.type");
        NormalizationForm form = type switch
        {
            "NFC" => NormalizationForm.FormC,
            "NFKC" => NormalizationForm.FormKC,
            "NFD" => NormalizationForm.FormD,
            "NFKD" => NormalizationForm.FormKD,
            _ => throw reader.Error($"normalizer.type is \"{type}\": byte-level BPE files are read with no normalizer or NFC, NFKC, NFD, NFKD"),
        };
        // The normalization data is read now, at load, rather than in the first request with non-ASCII text.
        _ = UnicodeNormalizer.UnicodeVersion;
        return form;
    }

    private static (Regex Words, bool AddPrefixSpace) ParsePreTokenizer(Reader reader, JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw reader.Error("pre_tokenizer is missing: a byte-level BPE needs a ByteLevel pre-tokenizer");
        string type = reader.String(pre, "type", "pre_tokenizer.type");
        if (type == "ByteLevel")
        {
            bool useRegex = reader.OptionalBool(pre, "use_regex", "pre_tokenizer.use_regex") ?? true;
            if (!useRegex) throw reader.Error("pre_tokenizer is ByteLevel with use_regex = false alone: every text would be one word; not implemented");
            return (new Regex(Gpt2Pattern, RegexOptions.CultureInvariant, MatchTimeout), reader.OptionalBool(pre, "add_prefix_space", "pre_tokenizer.add_prefix_space") ?? true);
        }
        if (type != "Sequence")
            throw reader.Error($"pre_tokenizer.type is \"{type}\": expected ByteLevel, or a Sequence of a Split and a ByteLevel");
        JsonElement list = reader.Array(pre, "pretokenizers", "pre_tokenizer.pretokenizers");
        if (list.GetArrayLength() != 2)
            throw reader.Error($"pre_tokenizer.pretokenizers has {list.GetArrayLength()} entries: expected a Split then a ByteLevel");
        JsonElement split = list[0], byteLevel = list[1];
        if (reader.String(split, "type", "pre_tokenizer.pretokenizers[0].type") != "Split")
            throw reader.Error("pre_tokenizer.pretokenizers[0] must be a Split");
        if (reader.String(byteLevel, "type", "pre_tokenizer.pretokenizers[1].type") != "ByteLevel")
            throw reader.Error("pre_tokenizer.pretokenizers[1] must be a ByteLevel");
        if (reader.OptionalBool(byteLevel, "use_regex", "pre_tokenizer.pretokenizers[1].use_regex") != false)
            throw reader.Error("pre_tokenizer.pretokenizers[1] (ByteLevel after a Split) must have use_regex = false");
        string behavior = reader.String(split, "behavior", "pre_tokenizer.pretokenizers[0].behavior");
        if (behavior != "Isolated")
            throw reader.Error($"pre_tokenizer.pretokenizers[0].behavior is \"{behavior}\": only Isolated is implemented");
        if (reader.OptionalBool(split, "invert", "pre_tokenizer.pretokenizers[0].invert") == true)
            throw reader.Error("pre_tokenizer.pretokenizers[0].invert is true: not implemented");
        JsonElement pattern = reader.Object(split, "pattern", "pre_tokenizer.pretokenizers[0].pattern");
        string regex = pattern.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()!
            : pattern.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String ? Regex.Escape(s.GetString()!)
            : throw reader.Error("pre_tokenizer.pretokenizers[0].pattern must hold a \"Regex\" or a \"String\"");
        Regex compiled;
        try
        {
            // Isolated: every match is a word and so is each stretch between matches; the catch-all alternative keeps
            // those stretches as words of their own.
            compiled = new Regex($"(?:{regex})|(?:(?!(?:{regex}))[\\s\\S])+", RegexOptions.CultureInvariant, MatchTimeout);
        }
        catch (ArgumentException e)
        {
            throw reader.Error($"pre_tokenizer.pretokenizers[0].pattern.Regex does not compile: {e.Message}");
        }
        return (compiled, reader.OptionalBool(byteLevel, "add_prefix_space", "pre_tokenizer.pretokenizers[1].add_prefix_space") ?? false);
    }

    private static (int[] Prefix, int[] Suffix) ParsePostProcessor(Reader reader, JsonElement root, Dictionary<string, int> vocabulary, List<AddedToken> added)
    {
        if (!root.TryGetProperty("post_processor", out var post) || post.ValueKind == JsonValueKind.Null) return ([], []);
        JsonElement? template = null;
        string type = reader.String(post, "type", "post_processor.type");
        if (type == "TemplateProcessing") template = post;
        else if (type == "Sequence")
        {
            foreach (JsonElement step in reader.Array(post, "processors", "post_processor.processors").EnumerateArray())
            {
                string stepType = reader.String(step, "type", "post_processor.processors[].type");
                if (stepType == "TemplateProcessing") template = step;
                else if (stepType != "ByteLevel") throw reader.Error($"post_processor.processors has a {stepType}: expected ByteLevel and TemplateProcessing");
            }
        }
        else if (type != "ByteLevel")
            throw reader.Error($"post_processor.type is \"{type}\": expected ByteLevel, TemplateProcessing or a Sequence of them");
        if (template is not { } t) return ([], []);

        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        foreach (JsonElement piece in reader.Array(t, "single", "post_processor.single").EnumerateArray())
        {
            if (piece.TryGetProperty("Sequence", out var sequence))
            {
                if (reader.String(sequence, "id", "post_processor.single[].Sequence.id") != "A")
                    throw reader.Error("post_processor.single names a sequence other than A in a single-sequence template");
                if (seenSequence) throw reader.Error("post_processor.single names sequence A twice");
                seenSequence = true;
            }
            else if (piece.TryGetProperty("SpecialToken", out var specialToken))
            {
                string name = reader.String(specialToken, "id", "post_processor.single[].SpecialToken.id");
                int id = added.FirstOrDefault(a => a.Content == name)?.Id
                    ?? (vocabulary.TryGetValue(name, out int v) ? v : throw reader.Error($"post_processor.single names \"{name}\", which is no token"));
                (seenSequence ? suffix : prefix).Add(id);
            }
            else throw reader.Error($"post_processor.single has an entry that is neither Sequence nor SpecialToken: {piece.GetRawText()}");
        }
        if (!seenSequence) throw reader.Error("post_processor.single does not name sequence A");
        return ([.. prefix], [.. suffix]);
    }

    private sealed record AddedToken(int Id, string Content, bool Special, bool LeftStrip, bool RightStrip);

    /// <summary>Reads fields of one tokenizer.json, each problem naming the file and the field.</summary>
    private readonly struct Reader(string path)
    {
        public ModelFormatException Error(string problem) => new(path, problem);

        public JsonElement Object(JsonElement parent, string name, string? where = null) =>
            parent.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Object ? v : throw Error($"{where ?? name} must be an object");

        public JsonElement Array(JsonElement parent, string name, string where) =>
            parent.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array ? v : throw Error($"{where} must be an array");

        public string String(JsonElement parent, string name, string where) =>
            parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
                ? v.GetString()! : throw Error($"{where} must be a string");

        public int Int(JsonElement parent, string name, string where) =>
            parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number
            && v.TryGetInt32(out int i) && i >= 0 ? i : throw Error($"{where} must be an integer ≥ 0");

        public bool? OptionalBool(JsonElement parent, string name, string where)
        {
            if (parent.ValueKind != JsonValueKind.Object || !parent.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Error($"{where} must be true or false"),
            };
        }
    }
}

/// <summary>
/// GPT-2's byte-level alphabet: each byte as a printable character (printable Latin-1 bytes as themselves, the rest as
/// U+0100 onwards in byte order), so that BPE runs over strings whose every character is one byte.
/// </summary>
internal static class ByteAlphabet
{
    public static readonly char[] Chars = Build();
    private static readonly Dictionary<char, byte> Bytes = Enumerable.Range(0, 256).ToDictionary(b => Chars[b], b => (byte)b);

    private static char[] Build()
    {
        var chars = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            chars[b] = printable ? (char)b : (char)next++;
        }
        return chars;
    }

    public static bool Contains(char c) => Bytes.ContainsKey(c);

    /// <summary>UTF-8 bytes written in the alphabet: one character per byte.</summary>
    public static string FromBytes(byte[] bytes) =>
        string.Create(bytes.Length, bytes, static (span, b) => { for (int i = 0; i < b.Length; i++) span[i] = Chars[b[i]]; });

    /// <summary>A vocabulary entry's bytes; a character outside the alphabet (not a byte-level entry) gives its UTF-8.</summary>
    public static byte[] ToBytes(string token)
    {
        if (!token.All(Contains)) return Encoding.UTF8.GetBytes(token);
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++) bytes[i] = Bytes[token[i]];
        return bytes;
    }
}
