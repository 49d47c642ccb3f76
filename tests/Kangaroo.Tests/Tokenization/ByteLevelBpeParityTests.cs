using System.Text;
using Kangaroo.Tokenization;
using Xunit;

namespace Kangaroo.Tests.Tokenization;

/// <summary>
/// Byte-level BPE tokenizer.json files (Llama 3 and Qwen2 layouts, made by make_bytelevel.mjs): ids with the template's
/// special tokens, and decodes with special tokens skipped, exactly as transformers.js gives them.
/// </summary>
public class ByteLevelBpeParityTests
{
    public static TheoryData<string> Fixtures => [TokenizerFixtures.ByteLevelLlama3, TokenizerFixtures.ByteLevelQwen2];

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Encode_MatchesTransformersJs_OnEveryLine(string fixture)
    {
        var tokenizer = TokenizerFixtures.Load(fixture);
        var cases = TokenizerFixtures.TextCases(fixture);
        Assert.True(cases.Count >= 150, $"only {cases.Count} test lines");
        var mismatches = cases
            .Select(c => (c, got: tokenizer.Encode(c.Text)))
            .Where(x => !x.got.SequenceEqual(x.c.Ids))
            .Select(x => $"{TokenizerFixtures.Show(x.c.Text)}: expected {TokenizerFixtures.Show(x.c.Ids)}, got {TokenizerFixtures.Show(x.got)}")
            .ToList();
        Assert.Empty(mismatches);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Decode_MatchesTransformersJs_WholeAndStreamed(string fixture)
    {
        var tokenizer = TokenizerFixtures.Load(fixture);
        var cases = TokenizerFixtures.TextCases(fixture).Select(c => (c.Ids, c.Decoded))
            .Concat(TokenizerFixtures.IdsCases(fixture).Select(c => (c.Ids, c.Decoded))).ToList();
        Assert.True(cases.Count >= 350, $"only {cases.Count} cases");
        var mismatches = new List<string>();
        foreach (var (ids, expected) in cases)
        {
            string whole = tokenizer.Decode(ids);
            var stream = tokenizer.CreateStreamingDecoder();
            var streamed = new StringBuilder();
            foreach (int id in ids) streamed.Append(stream.Push(id));
            streamed.Append(stream.Flush());
            if (whole != expected || streamed.ToString() != expected)
                mismatches.Add($"{TokenizerFixtures.Show(ids)}: expected {TokenizerFixtures.Show(expected)}, whole {TokenizerFixtures.Show(whole)}, streamed {TokenizerFixtures.Show(streamed.ToString())}");
        }
        Assert.Empty(mismatches);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Decode_WithCleanUpTokenizationSpaces_MatchesTransformersJs_WholeAndStreamed(string fixture)
    {
        string source = TokenizerFixtures.Directory(fixture);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(source, "tokenizer_config.json")))!.AsObject();
        config["clean_up_tokenization_spaces"] = true;
        using var dir = new TempModelDirectory()
            .With("tokenizer.json", File.ReadAllBytes(Path.Combine(source, "tokenizer.json")))
            .With("tokenizer_config.json", config.ToJsonString());
        var tokenizer = TextTokenizer.Load(dir.Path);
        Assert.True(tokenizer.CleansUpSpaces);
        var mismatches = new List<string>();
        int changed = 0;
        foreach (string line in File.ReadLines(Path.Combine(source, "expected.jsonl")))
        {
            using var document = System.Text.Json.JsonDocument.Parse(line);
            var r = document.RootElement;
            int[] ids = [.. r.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32())];
            string expected = r.GetProperty("decoded_clean").GetString()!;
            if (expected != r.GetProperty("decoded").GetString()) changed++;
            var stream = tokenizer.CreateStreamingDecoder();
            var streamed = new StringBuilder();
            foreach (int id in ids) streamed.Append(stream.Push(id));
            streamed.Append(stream.Flush());
            string whole = tokenizer.Decode(ids);
            if (whole != expected || streamed.ToString() != expected)
                mismatches.Add($"{TokenizerFixtures.Show(ids)}: expected {TokenizerFixtures.Show(expected)}, whole {TokenizerFixtures.Show(whole)}, streamed {TokenizerFixtures.Show(streamed.ToString())}");
        }
        Assert.True(changed >= 20, $"only {changed} cases where the cleanup changes the text");
        Assert.Empty(mismatches);
    }

    [Fact]
    public void Llama3Layout_AddsTheTemplatesBeginOfText_AndNamesItsSource()
    {
        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.ByteLevelLlama3);
        Assert.Equal(tokenizer.PieceToId("<|begin_of_text|>"), tokenizer.BosTokenId);
        Assert.Equal(tokenizer.PieceToId("<|end_of_text|>"), tokenizer.EosTokenId);
        Assert.True(tokenizer.AddBosToken);
        Assert.Equal(tokenizer.BosTokenId, tokenizer.Encode("hello")[0]);
        Assert.DoesNotContain(tokenizer.BosTokenId!.Value, tokenizer.Encode("hello", addBos: false));
        Assert.StartsWith("tokenizer.json (byte-level BPE", tokenizer.Source);
    }

    [Fact]
    public void Qwen2Layout_NormalizesToNfc_InAProcessWithInvariantGlobalization()
    {
        // The tests run invariant, as the CLI does, where string.Normalize leaves decomposed text as it is.
        string path = Path.Combine(TokenizerFixtures.Directory(TokenizerFixtures.ByteLevelQwen2), "tokenizer.json");
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var bpe = ByteLevelBpe.Parse(path, document.RootElement);
        // No template, so no BOS; its special tokens are tokens.
        Assert.Empty(bpe.TemplatePrefix);
        Assert.Empty(bpe.TemplateSuffix);
        Assert.NotNull(bpe.IdOf("<|im_end|>"));
        Assert.True(bpe.IsSpecial[bpe.IdOf("<|im_end|>")!.Value]);

        var tokenizer = TokenizerFixtures.Load(TokenizerFixtures.ByteLevelQwen2);
        Assert.Equal(tokenizer.Encode("Caf\u00E9 \uD55C\uAD6D"), tokenizer.Encode("Cafe\u0301 \u1112\u1161\u11AB\u1100\u116E\u11A8"));
        Assert.NotEqual(tokenizer.Encode("\uFB01"), tokenizer.Encode("fi"));   // NFC keeps compatibility characters
        // transformers.js decodes the lines it normalized as their NFC, which Encode_MatchesTransformersJs_OnEveryLine
        // then checks ids for.
        int normalized = TokenizerFixtures.TextCases(TokenizerFixtures.ByteLevelQwen2).Count(c => c.Decoded != c.Text);
        Assert.True(normalized >= 2, $"only {normalized} lines that NFC changes");
    }

    [Theory]
    [InlineData("""{"model":{"type":"BPE","dropout":0.1,"vocab":{},"merges":[]},"decoder":{"type":"ByteLevel"}}""", "model.dropout")]
    [InlineData("""{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"decoder":{"type":"ByteLevel"}}""", "byte-level token for byte 0x00")]
    [InlineData("""{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"decoder":{"type":"Metaspace"}}""", "not a byte-level BPE")]
    public void Unsupported_Or_Broken_Files_AreRefusedByField(string json, string expected)
    {
        using var dir = new TempModelDirectory().With("tokenizer.json", json);
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(dir.Path));
        Assert.Contains(dir.File("tokenizer.json"), e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void SparseOrRepeatedIds_AreRefused_BeforeAnyTableIsSizedByThem()
    {
        string original = File.ReadAllText(Path.Combine(TokenizerFixtures.Directory(TokenizerFixtures.ByteLevelLlama3), "tokenizer.json"));
        var root = System.Text.Json.Nodes.JsonNode.Parse(original)!.AsObject();
        root["model"]!["vocab"]!["Ġthe"] = 2_000_000_000;
        using var sparse = new TempModelDirectory().With("tokenizer.json", root.ToJsonString());
        Assert.Contains("ids must be 0", Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(sparse.Path)).Message);

        root = System.Text.Json.Nodes.JsonNode.Parse(original)!.AsObject();
        root["added_tokens"]![1]!["id"] = 5;
        using var repeated = new TempModelDirectory().With("tokenizer.json", root.ToJsonString());
        Assert.Contains("which another token has", Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(repeated.Path)).Message);
    }

    /// <summary>A merge listed twice ranks where it is listed last (Hugging Face builds its merge map in list order): the same ids as a file with only the last entry.</summary>
    [Fact]
    public void ARepeatedMerge_KeepsItsLastRank()
    {
        string original = File.ReadAllText(Path.Combine(TokenizerFixtures.Directory(TokenizerFixtures.ByteLevelLlama3), "tokenizer.json"));
        var repeated = System.Text.Json.Nodes.JsonNode.Parse(original)!.AsObject();
        var merges = repeated["model"]!["merges"]!.AsArray();
        string first = merges[0]!.GetValue<string>();
        merges.Add(first);
        var moved = System.Text.Json.Nodes.JsonNode.Parse(original)!.AsObject();
        var movedMerges = moved["model"]!["merges"]!.AsArray();
        movedMerges.RemoveAt(0);
        movedMerges.Add(first);
        using var repeatedDir = new TempModelDirectory().With("tokenizer.json", repeated.ToJsonString());
        using var movedDir = new TempModelDirectory().With("tokenizer.json", moved.ToJsonString());
        using var originalDir = new TempModelDirectory().With("tokenizer.json", original);
        var lines = TokenizerFixtures.TextCases(TokenizerFixtures.ByteLevelLlama3).Select(c => c.Text).ToList();
        var withRepeat = TextTokenizer.Load(repeatedDir.Path);
        var withMove = TextTokenizer.Load(movedDir.Path);
        var plain = TextTokenizer.Load(originalDir.Path);
        Assert.All(lines, line => Assert.Equal(withMove.Encode(line), withRepeat.Encode(line)));
        Assert.Contains(lines, line => !plain.Encode(line).SequenceEqual(withRepeat.Encode(line)));   // the rank mattered
    }

    [Fact]
    public void APatternThatBacktracksWithoutEnd_EndsInAnErrorNamingTheFile()
    {
        string original = File.ReadAllText(Path.Combine(TokenizerFixtures.Directory(TokenizerFixtures.ByteLevelLlama3), "tokenizer.json"));
        var root = System.Text.Json.Nodes.JsonNode.Parse(original)!.AsObject();
        root["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"] = System.Text.Json.Nodes.JsonNode.Parse("""{"Regex":"(a+)+b"}""");
        using var dir = new TempModelDirectory().With("tokenizer.json", root.ToJsonString());
        var tokenizer = TextTokenizer.Load(dir.Path);
        var e = Assert.Throws<ModelFormatException>(() => tokenizer.Encode(new string('a', 40) + "c"));
        Assert.Contains(dir.File("tokenizer.json"), e.Message);
        Assert.Contains("backtracks", e.Message);
    }

    [Theory]
    [InlineData("normalizer", """{"type":"Lowercase"}""", "normalizer.type is \"Lowercase\"")]
    [InlineData("pre_tokenizer", """{"type":"Whitespace"}""", "pre_tokenizer.type is \"Whitespace\"")]
    [InlineData("post_processor", """{"type":"RobertaProcessing"}""", "post_processor.type is \"RobertaProcessing\"")]
    public void UnimplementedComponents_OfARealLayout_AreRefusedByName(string field, string replacement, string expected)
    {
        string original = File.ReadAllText(Path.Combine(TokenizerFixtures.Directory(TokenizerFixtures.ByteLevelLlama3), "tokenizer.json"));
        var root = System.Text.Json.Nodes.JsonNode.Parse(original)!.AsObject();
        root[field] = System.Text.Json.Nodes.JsonNode.Parse(replacement);
        using var dir = new TempModelDirectory().With("tokenizer.json", root.ToJsonString());
        var e = Assert.Throws<ModelFormatException>(() => TextTokenizer.Load(dir.Path));
        Assert.Contains(expected, e.Message);
    }
}
