using Kangaroo.Tokenization;
using Xunit;

namespace Kangaroo.Tests.Tokenization;

public class TokenizerLoadingTests
{
    [Fact]
    public void LlamaFixture_AddsBos_PerTokenizerConfig()
    {
        // bos_token is written as an AddedToken object, eos_token as a plain string.
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        Assert.Equal(1500, tokenizer.VocabularySize);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.True(tokenizer.AddBosToken);
        Assert.False(tokenizer.AddEosToken);

        int[] ids = tokenizer.Encode("Hello world");
        Assert.Equal(1, ids[0]);
        Assert.Equal(tokenizer.Encode("Hello world", addBos: false), ids[1..]);
        Assert.Equal([], tokenizer.Encode("", addBos: false));
        Assert.Equal([1], tokenizer.Encode(""));
    }

    [Fact]
    public void CodeFixture_DoesNotAddBos_WhenTokenizerConfigSaysSo()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Code);
        Assert.False(tokenizer.AddBosToken);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);   // from {"content": "</s>"}
        Assert.NotEqual(1, tokenizer.Encode("x = 1")[0]);
        Assert.Equal(1, tokenizer.Encode("x = 1", addBos: true)[0]);
    }

    [Fact]
    public void WithoutTokenizerConfig_UsesTheModelsOwnBosEos_AndAddsBos()
    {
        using var dir = new TempModelDirectory().WithFixtureModel(TokenizerFixtures.Code);
        var tokenizer = TextTokenizer.Load(dir.Path);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.True(tokenizer.AddBosToken);
        Assert.False(tokenizer.AddEosToken);
        Assert.Equal(1, tokenizer.Encode("x")[0]);
    }

    [Fact]
    public void TokenizerConfig_AddEosToken_AppendsEos()
    {
        using var dir = new TempModelDirectory().WithFixtureModel(TokenizerFixtures.Llama)
            .With("tokenizer_config.json", """{ "add_bos_token": false, "add_eos_token": true }""");
        var tokenizer = TextTokenizer.Load(dir.Path);
        int[] ids = tokenizer.Encode("hi");
        Assert.NotEqual(1, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Equal("hi", tokenizer.Decode(ids));
    }

    [Fact]
    public void TokenizerConfig_CanNameOtherPiecesAsBosEos_WhichDecodeThenSkips()
    {
        using var dir = new TempModelDirectory().WithFixtureModel(TokenizerFixtures.Llama)
            .With("tokenizer_config.json", """{ "bos_token": "<unk>", "eos_token": {"content": "<0x0A>"} }""");
        var tokenizer = TextTokenizer.Load(dir.Path);
        Assert.Equal(0, tokenizer.BosTokenId);
        Assert.Equal(tokenizer.PieceToId("<0x0A>"), tokenizer.EosTokenId);
        Assert.Equal("ab", tokenizer.Decode([0, tokenizer.Encode("a", addBos: false)[0], tokenizer.EosTokenId!.Value, tokenizer.PieceToId("b")!.Value]));
    }

    [Fact]
    public void TokenizerConfig_NullBosToken_MeansNoBos()
    {
        using var dir = new TempModelDirectory().WithFixtureModel(TokenizerFixtures.Llama)
            .With("tokenizer_config.json", """{ "add_bos_token": true, "bos_token": null }""");
        var tokenizer = TextTokenizer.Load(dir.Path);
        Assert.Null(tokenizer.BosTokenId);
        Assert.False(tokenizer.AddBosToken);
        Assert.Equal(tokenizer.Encode("hi", addBos: false), tokenizer.Encode("hi"));
    }

    [Fact]
    public void MissingDirectory_IsAModelFormatException()
    {
        string path = Path.Combine(Path.GetTempPath(), "kangaroo-no-such-model-" + Guid.NewGuid());
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void MissingTokenizerModel_NamesTheFile()
    {
        using var dir = new TempModelDirectory();
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(dir.Path));
        Assert.Equal(dir.File("tokenizer.model"), e.Path);
        Assert.Contains(dir.File("tokenizer.model"), e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void OnlyTokenizerJson_SaysWhatIsSupported()
    {
        using var dir = new TempModelDirectory().With("tokenizer.json", """{ "model": { "type": "BPE" } }""");
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(dir.Path));
        Assert.Contains(dir.File("tokenizer.json"), e.Message);
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains("not supported", e.Message);
    }

    [Fact]
    public void TokenizerModel_IsPreferredOverTokenizerJson()
    {
        using var dir = new TempModelDirectory().WithFixtureModel(TokenizerFixtures.Llama).With("tokenizer.json", "not even json");
        Assert.Equal(1500, TextTokenizer.Load(dir.Path).VocabularySize);
    }

    public static TheoryData<string, byte[]> CorruptModels()
    {
        byte[] real = File.ReadAllBytes(Path.Combine(TokenizerFixtures.Directory(TokenizerFixtures.Llama), "tokenizer.model"));
        var random = new Random(11);
        byte[] garbage = new byte[4096];
        random.NextBytes(garbage);
        return new TheoryData<string, byte[]>
        {
            { "truncated to half", real[..(real.Length / 2)] },
            { "truncated by one byte", real[..^1] },
            { "random bytes", garbage },
            { "text", "this is not a sentencepiece model\n"u8.ToArray() },
            { "json", """{"model": {"type": "BPE"}}"""u8.ToArray() },
        };
    }

    [Theory]
    [MemberData(nameof(CorruptModels))]
    public void CorruptTokenizerModel_IsAModelFormatExceptionNamingTheFile(string what, byte[] content)
    {
        using var dir = new TempModelDirectory().With("tokenizer.model", content);
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(dir.Path));
        Assert.Equal(dir.File("tokenizer.model"), e.Path);
        Assert.Contains(dir.File("tokenizer.model"), e.Message);
        Assert.Contains("not a valid SentencePiece model", e.Message);
        Assert.NotNull(what);
    }

    [Fact]
    public void EmptyTokenizerModel_SaysSo()
    {
        using var dir = new TempModelDirectory().With("tokenizer.model", []);
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(dir.Path));
        Assert.Equal($"{dir.File("tokenizer.model")}: is empty (0 bytes) or not a regular file (a FIFO, device or /proc entry); expected a SentencePiece tokenizer.model", e.Message);
    }

    [Fact]
    public void UnigramModel_IsRefusedClearly()
    {
        // Microsoft.ML.Tokenizers' Unigram ids disagree with sentencepiece's; better refused than silently wrong.
        string path = Path.Combine(TokenizerFixtures.Directory("unigram"), "tokenizer.model");
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(TokenizerFixtures.Directory("unigram")));
        Assert.Equal(path, e.Path);
        Assert.Contains("Unigram models are not supported", e.Message);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("")]
    [InlineData("[1, 2, 3]")]
    [InlineData("""{ "add_bos_token": "yes" }""")]
    [InlineData("""{ "bos_token": 1 }""")]
    [InlineData("""{ "bos_token": { "content": 1 } }""")]
    [InlineData("""{ "bos_token": "<|begin_of_text|>" }""")]
    public void InvalidTokenizerConfig_IsAModelFormatExceptionNamingTheFile(string json)
    {
        using var dir = new TempModelDirectory().WithFixtureModel(TokenizerFixtures.Llama).With("tokenizer_config.json", json);
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(dir.Path));
        Assert.Equal(dir.File("tokenizer_config.json"), e.Path);
        Assert.Contains(dir.File("tokenizer_config.json"), e.Message);
    }
}
