namespace Kangaroo.Tokenization;

/// <summary>
/// The model's tokenizer (through Microsoft.ML.Tokenizers): SentencePiece <c>tokenizer.model</c> (Llama style),
/// or <c>tokenizer.json</c> where the library can serve it. BOS/EOS behaviour follows
/// <c>tokenizer_config.json</c> when present.
/// </summary>
public sealed class TextTokenizer
{
    private TextTokenizer() => throw new NotImplementedException();

    /// <summary>Loads the tokenizer of a model directory. Missing or malformed files are a <see cref="ModelFormatException"/>.</summary>
    public static TextTokenizer Load(string modelDirectory) => throw new NotImplementedException();

    public int VocabularySize => throw new NotImplementedException();
    public int? BosTokenId => throw new NotImplementedException();
    public int? EosTokenId => throw new NotImplementedException();

    /// <summary>Whether <see cref="Encode(string)"/> prepends BOS (tokenizer_config.json's add_bos_token, default true).</summary>
    public bool AddBosToken => throw new NotImplementedException();

    /// <summary>Token ids of <paramref name="text"/>, with BOS prepended when <see cref="AddBosToken"/> says so.</summary>
    public int[] Encode(string text) => throw new NotImplementedException();

    /// <summary>Token ids of <paramref name="text"/>, BOS as asked.</summary>
    public int[] Encode(string text, bool addBos) => throw new NotImplementedException();

    /// <summary>Text of the ids; special tokens (BOS/EOS) are skipped.</summary>
    public string Decode(ReadOnlySpan<int> ids) => throw new NotImplementedException();

    /// <summary>A new incremental decoder for one generation's output tokens.</summary>
    public StreamingDetokenizer CreateStreamingDecoder() => throw new NotImplementedException();
}

/// <summary>
/// Turns generated token ids into text pieces as they arrive. A piece never ends inside a UTF-8 character
/// split across byte-fallback tokens, and the concatenation of all pieces plus <see cref="Flush"/> equals
/// <see cref="TextTokenizer.Decode"/> of all ids.
/// </summary>
public sealed class StreamingDetokenizer
{
    private StreamingDetokenizer() => throw new NotImplementedException();

    /// <summary>Adds one token; returns the text that became complete (possibly empty).</summary>
    public string Push(int tokenId) => throw new NotImplementedException();

    /// <summary>Whatever is still held back (an incomplete UTF-8 sequence becomes U+FFFD).</summary>
    public string Flush() => throw new NotImplementedException();
}
