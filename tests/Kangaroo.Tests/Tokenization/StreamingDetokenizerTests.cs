using System.Text;
using Kangaroo.Tokenization;
using Xunit;

namespace Kangaroo.Tests.Tokenization;

public class StreamingDetokenizerTests
{
    [Fact]
    public void Push_HoldsBackACharacterSplitAcrossBytePieces()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        int[] euro = [ByteId(tokenizer, 0xE2), ByteId(tokenizer, 0x82), ByteId(tokenizer, 0xAC)];
        var stream = tokenizer.CreateStreamingDecoder();

        Assert.Equal("", stream.Push(euro[0]));
        Assert.Equal("", stream.Push(euro[1]));
        Assert.Equal("€", stream.Push(euro[2]));
        Assert.Equal("", stream.Flush());
    }

    [Fact]
    public void Flush_TurnsAnUnfinishedCharacterIntoReplacementCharacters()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        var stream = tokenizer.CreateStreamingDecoder();
        Assert.Equal("", stream.Push(ByteId(tokenizer, 0xF0)));
        Assert.Equal("", stream.Push(ByteId(tokenizer, 0x9F)));
        Assert.Equal("\uFFFD\uFFFD", stream.Flush());
    }

    [Fact]
    public void Push_EmitsInvalidBytesAsSoonAsTheyAreKnownInvalid()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        var stream = tokenizer.CreateStreamingDecoder();
        Assert.Equal("", stream.Push(ByteId(tokenizer, 0xE2)));
        Assert.Equal("\uFFFDA", stream.Push(ByteId(tokenizer, 0x41)));
    }

    [Fact]
    public void Push_EmojiFromByteFallback_ComesOutWhole()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        var stream = tokenizer.CreateStreamingDecoder();
        var pieces = tokenizer.Encode("Rare emoji: 🦘!", addBos: true).Select(stream.Push).ToList();
        pieces.Add(stream.Flush());

        Assert.Contains("🦘", pieces);
        Assert.All(pieces, p => Assert.False(HasLoneSurrogateOrReplacement(p), $"broken piece {TokenizerFixtures.Show(p)}"));
        Assert.Equal("Rare emoji: 🦘!", string.Concat(pieces));
    }

    [Theory]
    [InlineData(TokenizerFixtures.Llama)]
    [InlineData(TokenizerFixtures.Code)]
    public void Concatenation_EqualsDecode_OnEncodedText(string fixture)
    {
        var tokenizer = TokenizerFixtures.Load(fixture);
        foreach (var c in TokenizerFixtures.TextCases(fixture))
        {
            int[] ids = tokenizer.Encode(c.Text);
            string streamed = Stream(tokenizer, ids, out List<string> pieces);
            Assert.Equal(tokenizer.Decode(ids), streamed);
            if (!c.Text.Contains('\uFFFD'))
                Assert.All(pieces, p => Assert.False(HasLoneSurrogateOrReplacement(p), $"{TokenizerFixtures.Show(c.Text)}: broken piece {TokenizerFixtures.Show(p)}"));
        }
    }

    [Theory]
    [InlineData(TokenizerFixtures.Llama, 1)]
    [InlineData(TokenizerFixtures.Llama, 2)]
    [InlineData(TokenizerFixtures.Code, 3)]
    [InlineData(TokenizerFixtures.Code, 4)]
    public void Concatenation_EqualsDecode_OnRandomIdSequences(string fixture, int seed)
    {
        var tokenizer = TokenizerFixtures.Load(fixture);
        int[] byteIds = Enumerable.Range(0, 256).Select(b => ByteId(tokenizer, b)).ToArray();
        int[] special = [0, tokenizer.BosTokenId!.Value, tokenizer.EosTokenId!.Value, tokenizer.VocabularySize + 7];
        var random = new Random(seed);
        for (int sequence = 0; sequence < 2000; sequence++)
        {
            // Byte ids are over-represented so that characters get split, truncated and interleaved.
            int[] ids = new int[random.Next(0, 40)];
            for (int i = 0; i < ids.Length; i++)
            {
                double r = random.NextDouble();
                ids[i] = r < 0.05 ? special[random.Next(special.Length)]
                    : r < 0.55 ? byteIds[random.Next(byteIds.Length)]
                    : random.Next(tokenizer.VocabularySize);
            }
            Assert.Equal(tokenizer.Decode(ids), Stream(tokenizer, ids, out _));
        }
    }

    [Fact]
    public void Concatenation_EqualsDecode_WhenValidMultiByteCharactersAreSplit()
    {
        // Random text of multi-byte characters, forced through byte pieces: every piece must be whole characters.
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        var random = new Random(5);
        string[] alphabet = ["é", "€", "東", "🦘", "𐌀", "a", " ", "\n"];
        for (int round = 0; round < 500; round++)
        {
            string text = string.Concat(Enumerable.Range(0, random.Next(1, 12)).Select(_ => alphabet[random.Next(alphabet.Length)]));
            int[] ids = Encoding.UTF8.GetBytes(text).Select(b => ByteId(tokenizer, b)).ToArray();
            string streamed = Stream(tokenizer, ids, out List<string> pieces);
            Assert.Equal(text, streamed);
            Assert.Equal(tokenizer.Decode(ids), streamed);
            Assert.All(pieces, p => Assert.False(HasLoneSurrogateOrReplacement(p), $"broken piece {TokenizerFixtures.Show(p)}"));
        }
    }

    [Fact]
    public void Push_DropsTheDummyPrefixOnlyOnce()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.Llama);
        int[] ids = tokenizer.Encode("Hello world", addBos: true);
        var stream = tokenizer.CreateStreamingDecoder();
        string first = stream.Push(ids[0]) + stream.Push(ids[1]);
        Assert.False(first.StartsWith(' '), TokenizerFixtures.Show(first));
        Assert.Equal("Hello world", first + string.Concat(ids.Skip(2).Select(stream.Push)) + stream.Flush());
    }

    private static string Stream(TextTokenizer tokenizer, int[] ids, out List<string> pieces)
    {
        var stream = tokenizer.CreateStreamingDecoder();
        pieces = ids.Select(stream.Push).ToList();
        pieces.Add(stream.Flush());
        return string.Concat(pieces);
    }

    private static bool HasLoneSurrogateOrReplacement(string piece)
    {
        for (int i = 0; i < piece.Length; i++)
        {
            if (piece[i] == '\uFFFD')
                return true;
            if (char.IsHighSurrogate(piece[i]) && i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]))
                i++;
            else if (char.IsSurrogate(piece[i]))
                return true;
        }
        return false;
    }

    private static int ByteId(TextTokenizer tokenizer, int value) =>
        tokenizer.PieceToId($"<0x{value:X2}>") ?? throw new InvalidOperationException($"no byte piece for {value:X2}");
}
