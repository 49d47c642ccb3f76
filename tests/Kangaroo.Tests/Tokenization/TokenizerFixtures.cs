using System.Collections.Concurrent;
using System.Text.Json;
using Kangaroo.Tokenization;

namespace Kangaroo.Tests.Tokenization;

/// <summary>The SentencePiece fixtures made by Fixtures/tokenizer/make_fixtures.sh, and what sentencepiece says about them.</summary>
internal static class TokenizerFixtures
{
    public const string Llama = "llama";
    public const string Code = "code";
    public const string ByteLevelLlama3 = "bytelevel-llama3";
    public const string ByteLevelQwen2 = "bytelevel-qwen2";

    private static readonly ConcurrentDictionary<string, TextTokenizer> Loaded = new();

    public static string Directory(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer", name);

    public static TextTokenizer Load(string name) => Loaded.GetOrAdd(name, n => TextTokenizer.Load(Directory(n)));

    /// <summary>Held-out text with the ids (no BOS) and decode that python3-sentencepiece gives.</summary>
    public static IReadOnlyList<TextCase> TextCases(string name) =>
        Records(name).Where(r => r.Kind == "text").Select(r => new TextCase(r.Text!, r.Ids, r.Decoded)).ToArray();

    /// <summary>Random id sequences (control, unknown and byte ids included) with sentencepiece's decode.</summary>
    public static IReadOnlyList<IdsCase> IdsCases(string name) =>
        Records(name).Where(r => r.Kind == "ids").Select(r => new IdsCase(r.Ids, r.Decoded)).ToArray();

    private static IEnumerable<Record> Records(string name)
    {
        foreach (string line in File.ReadLines(Path.Combine(Directory(name), "expected.jsonl")))
        {
            using JsonDocument document = JsonDocument.Parse(line);
            JsonElement root = document.RootElement;
            yield return new Record(
                root.GetProperty("kind").GetString()!,
                root.TryGetProperty("text", out JsonElement text) ? text.GetString() : null,
                root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                root.GetProperty("decoded").GetString()!);
        }
    }

    public static string Show(string text) => JsonSerializer.Serialize(text);

    public static string Show(IEnumerable<int> ids) => "[" + string.Join(",", ids) + "]";

    private sealed record Record(string Kind, string? Text, int[] Ids, string Decoded);
}

internal sealed record TextCase(string Text, int[] Ids, string Decoded);

internal sealed record IdsCase(int[] Ids, string Decoded);

/// <summary>A throw-away model directory for the error-path tests.</summary>
internal sealed class TempModelDirectory : IDisposable
{
    public TempModelDirectory() => Path = System.IO.Directory.CreateTempSubdirectory("kangaroo-tokenizer-").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public TempModelDirectory WithFixtureModel(string fixture)
    {
        System.IO.File.Copy(System.IO.Path.Combine(TokenizerFixtures.Directory(fixture), "tokenizer.model"), File("tokenizer.model"));
        return this;
    }

    public TempModelDirectory With(string name, byte[] content)
    {
        System.IO.File.WriteAllBytes(File(name), content);
        return this;
    }

    public TempModelDirectory With(string name, string content)
    {
        System.IO.File.WriteAllText(File(name), content);
        return this;
    }

    public void Dispose() => System.IO.Directory.Delete(Path, recursive: true);
}
