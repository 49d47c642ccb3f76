using Xunit;

namespace Kangaroo.Tests.Tokenization;

/// <summary>Ids and text must be exactly what the sentencepiece library gives (python3-sentencepiece made the fixtures).</summary>
public class SentencePieceParityTests
{
    [Theory]
    [InlineData(TokenizerFixtures.Llama)]
    [InlineData(TokenizerFixtures.Code)]
    public void Encode_MatchesSentencePiece_OnEveryLine(string fixture)
    {
        var tokenizer = TokenizerFixtures.Load(fixture);
        var cases = TokenizerFixtures.TextCases(fixture);
        Assert.True(cases.Count >= 100, $"only {cases.Count} test lines");

        var mismatches = cases
            .Select(c => (c, got: tokenizer.Encode(c.Text, addBos: false)))
            .Where(x => !x.got.SequenceEqual(x.c.Ids))
            .Select(x => $"{TokenizerFixtures.Show(x.c.Text)}: expected {TokenizerFixtures.Show(x.c.Ids)}, got {TokenizerFixtures.Show(x.got)}")
            .ToList();
        Assert.Empty(mismatches);
    }

    [Theory]
    [InlineData(TokenizerFixtures.Llama)]
    [InlineData(TokenizerFixtures.Code)]
    public void Decode_MatchesSentencePiece_OnEncodedLines(string fixture)
    {
        var tokenizer = TokenizerFixtures.Load(fixture);
        var mismatches = TokenizerFixtures.TextCases(fixture)
            .Select(c => (c, got: tokenizer.Decode(c.Ids)))
            .Where(x => x.got != x.c.Decoded)
            .Select(x => $"{TokenizerFixtures.Show(x.c.Ids)}: expected {TokenizerFixtures.Show(x.c.Decoded)}, got {TokenizerFixtures.Show(x.got)}")
            .ToList();
        Assert.Empty(mismatches);
    }

    [Theory]
    [InlineData(TokenizerFixtures.Llama)]
    [InlineData(TokenizerFixtures.Code)]
    public void Decode_MatchesSentencePiece_OnRandomIdSequences(string fixture)
    {
        var tokenizer = TokenizerFixtures.Load(fixture);
        var cases = TokenizerFixtures.IdsCases(fixture);
        Assert.NotEmpty(cases);
        var mismatches = cases
            .Select(c => (c, got: tokenizer.Decode(c.Ids)))
            .Where(x => x.got != x.c.Decoded)
            .Select(x => $"{TokenizerFixtures.Show(x.c.Ids)}: expected {TokenizerFixtures.Show(x.c.Decoded)}, got {TokenizerFixtures.Show(x.got)}")
            .ToList();
        Assert.Empty(mismatches);
    }

    [Fact]
    public void CodeModel_RoundTripsEveryLineExactly()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Code);
        var failures = TokenizerFixtures.TextCases(TokenizerFixtures.Code)
            .Where(c => !c.Text.Contains('\u2581'))   // a literal ▁ decodes as a space, in sentencepiece too
            .Select(c => (c.Text, back: tokenizer.Decode(tokenizer.Encode(c.Text, addBos: true))))
            .Where(x => x.back != x.Text)
            .Select(x => $"{TokenizerFixtures.Show(x.Text)} came back as {TokenizerFixtures.Show(x.back)}")
            .ToList();
        Assert.Empty(failures);
    }

    [Theory]
    [InlineData("def f(x):\n    if x:\n        return [x,  x]\n\n\treturn None\n")]
    [InlineData("  two leading spaces and trailing  ")]
    [InlineData("\n\nclass A {\r\n\tint x;   // comment\r\n}\n")]
    public void CodeModel_RoundTripsCode(string code)
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Code);
        Assert.Equal(code, tokenizer.Decode(tokenizer.Encode(code)));
    }

    [Fact]
    public void LlamaModel_DropsOnlyTheDummyPrefixSpace()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        foreach (string text in new[] { "Hello", " Hello", "  indented\n    code", "\tTab" })
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
    }

    [Fact]
    public void Encode_TreatsSpecialTokenTextAsPlainText()
    {
        // SentencePiece never produces control pieces from text: "<s>" in a prompt is characters, not BOS.
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        int[] ids = tokenizer.Encode("<s> hi </s>", addBos: false);
        Assert.DoesNotContain(tokenizer.BosTokenId!.Value, ids);
        Assert.DoesNotContain(tokenizer.EosTokenId!.Value, ids);
        Assert.Equal("<s> hi </s>", tokenizer.Decode(ids));
    }

    [Fact]
    public void Encode_LoneSurrogate_FallsBackToReplacementBytes()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        Assert.Equal("a\uFFFDb", tokenizer.Decode(tokenizer.Encode("a\uD800b")));
    }

    [Fact]
    public void EncodeAndDecode_AreThreadSafe()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        var cases = TokenizerFixtures.TextCases(TokenizerFixtures.Llama);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            for (int round = 0; round < 5; round++)
            {
                foreach (var c in cases)
                {
                    if (!tokenizer.Encode(c.Text, addBos: false).SequenceEqual(c.Ids))
                        failures.Add($"encode {TokenizerFixtures.Show(c.Text)}");
                    if (tokenizer.Decode(c.Ids) != c.Decoded)
                        failures.Add($"decode {TokenizerFixtures.Show(c.Ids)}");
                }
            }
        });
        Assert.Empty(failures);
    }
}
