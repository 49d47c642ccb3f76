using System.Text;
using System.Text.Json;
using Kangaroo.Tokenization;
using Xunit;

namespace Kangaroo.Tests.Tokenization;

/// <summary>
/// Real tokenizer.json files (Llama 3's, Qwen2's) against a reference's ids on a large corpus: each directory in
/// KANGAROO_TOKENIZER_PARITY_DIRS (':'-separated) holds tokenizer.json, tokenizer_config.json and the reference's
/// expected.jsonl (Fixtures/tokenizer/reference_ids.mjs writes it with transformers.js). Skipped when the variable is unset.
/// </summary>
public class ExternalTokenizerParityTests
{
    [Fact]
    public void EveryLine_EncodesAndDecodesAsTheReference()
    {
        string? dirs = Environment.GetEnvironmentVariable("KANGAROO_TOKENIZER_PARITY_DIRS");
        if (string.IsNullOrEmpty(dirs)) Assert.Skip("KANGAROO_TOKENIZER_PARITY_DIRS is not set (see Fixtures/tokenizer/reference_ids.mjs)");
        var report = new List<string>();
        foreach (string dir in dirs.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var tokenizer = TextTokenizer.Load(dir);
            int lines = 0;
            var mismatches = new List<string>();
            foreach (string line in File.ReadLines(Path.Combine(dir, "expected.jsonl")))
            {
                using var document = JsonDocument.Parse(line);
                JsonElement r = document.RootElement;
                string text = r.GetProperty("text").GetString()!;
                int[] ids = [.. r.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32())];
                string decoded = r.GetProperty("decoded").GetString()!;
                lines++;
                int[] got = tokenizer.Encode(text);
                var stream = tokenizer.CreateStreamingDecoder();
                var streamed = new StringBuilder();
                foreach (int id in ids) streamed.Append(stream.Push(id));
                streamed.Append(stream.Flush());
                if (!got.SequenceEqual(ids) || tokenizer.Decode(ids) != decoded || streamed.ToString() != decoded)
                    mismatches.Add($"{TokenizerFixtures.Show(text)}: expected {TokenizerFixtures.Show(ids)}, got {TokenizerFixtures.Show(got)}");
            }
            Assert.True(lines >= 10_000, $"{dir}: only {lines} reference lines");
            Assert.True(mismatches.Count == 0, $"{dir}: {mismatches.Count} of {lines} lines differ:\n{string.Join("\n", mismatches.Take(10))}");
            report.Add($"{dir}: {lines} lines identical");
        }
        TestContext.Current.SendDiagnosticMessage(string.Join("\n", report));
    }
}
