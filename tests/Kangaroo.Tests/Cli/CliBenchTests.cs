using System.Text.Json;
using Xunit;
using static Kangaroo.Tests.CommandLine.CliRunner;

namespace Kangaroo.Tests.CommandLine;

/// <summary><c>kangaroo bench --prompts</c>: the end-to-end comparison on the demo model (CPU), its JSON and markdown.</summary>
public sealed class CliBenchTests
{
    [Fact]
    public void EndToEndComparesVanillaAndKangarooAndWritesJsonAndMarkdown()
    {
        using var dir = new TestDirectory("cli-bench");
        string prompts = dir.Combine("prompts.jsonl");
        File.WriteAllLines(prompts,
        [
            JsonSerializer.Serialize(new { id = 0, prompt = "def fibonacci(n):" }),
            "",
            JsonSerializer.Serialize(new { id = 1, prompt = "import os\n\n\ndef main(argv):\n    path = argv[1]\n" }),
            JsonSerializer.Serialize(new { id = 2, prompt = "class Stack:\n    def __init__(self):\n" }),
        ]);
        string json = dir.Combine("bench.json"), markdown = dir.Combine("bench.md"), outputs = dir.Combine("outputs.jsonl");

        var r = AssertSuccess(Run("bench", "--backend", "cpu", "--no-steps", "--prompts", prompts, "--prompt-count", "2", "--max-tokens", "16",
            "--json", json, "--markdown", markdown, "--outputs", outputs, "--batch", "1,2"));

        Assert.Contains("end to end:   2 prompts × ≤ 16 new tokens, greedy; exit layer 2, draft steps 6, threshold 0.6", r.Stdout);
        Assert.Contains("outputs:    identical on 2 of 2 prompts", r.Stdout);
        Assert.DoesNotContain("decode step:", r.Stdout);
        Assert.Matches(@"memory:       copy \d+\.\d GB/s \(read \+ write\), read \d+\.\d GB/s \(256 MiB buffers\)", r.Stdout);
        using var figures = JsonDocument.Parse(File.ReadAllText(json));
        Assert.True(figures.RootElement.GetProperty("read_tb_s").GetDouble() > 0);
        Assert.True(figures.RootElement.GetProperty("copy_tb_s").GetDouble() > 0);
        var e2e = figures.RootElement.GetProperty("end_to_end");
        Assert.Equal(2, e2e.GetProperty("prompts").GetInt32());
        Assert.True(e2e.GetProperty("identical_outputs").GetBoolean());
        Assert.Equal(e2e.GetProperty("vanilla_tokens").GetInt32(), e2e.GetProperty("kangaroo_tokens").GetInt32());
        Assert.True(e2e.GetProperty("mean_accepted").GetDouble() >= 1);
        Assert.True(e2e.GetProperty("speedup").GetDouble() > 0);
        // Several sequences at once: each size's throughput, and every output equal to vanilla decoded alone.
        var batch = figures.RootElement.GetProperty("batch").EnumerateArray().ToArray();
        Assert.Equal([1, 2], batch.Select(b => b.GetProperty("sequences").GetInt32()));
        foreach (var size in batch)
        {
            Assert.True(size.GetProperty("identical_outputs").GetBoolean());
            Assert.Equal(e2e.GetProperty("vanilla_tokens").GetInt32(), size.GetProperty("vanilla_tokens").GetInt32());
            Assert.Equal(e2e.GetProperty("kangaroo_tokens").GetInt32(), size.GetProperty("kangaroo_tokens").GetInt32());
            Assert.True(size.GetProperty("kangaroo_tok_s").GetDouble() > 0 && size.GetProperty("vanilla_tok_s").GetDouble() > 0);
            Assert.Equal(e2e.GetProperty("mean_accepted").GetDouble(), size.GetProperty("mean_accepted").GetDouble(), 6);
        }
        Assert.Matches(@"\n\s+2 seqs:   vanilla +\d+\.\d tok/s, Kangaroo +\d+\.\d tok/s", r.Stdout);
        string table = File.ReadAllText(markdown);
        Assert.Contains("| identical outputs | 2 of 2 | |", table);
        Assert.Contains("| sequences | vanilla tok/s | Kangaroo tok/s | speedup | tokens per round | identical to vanilla alone |", table);
        Assert.Contains("| decode tok/s |", table);

        // What peers are compared against: the prompt ids the model saw and each mode's new tokens, one line per prompt.
        string[] lines = File.ReadAllLines(outputs);
        Assert.Equal(2, lines.Length);
        var tokenizer = Kangaroo.Tokenization.TextTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "models", "demo"));
        for (int i = 0; i < lines.Length; i++)
        {
            using var line = JsonDocument.Parse(lines[i]);
            int[] Ids(string name) => line.RootElement.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
            string prompt = i == 0 ? "def fibonacci(n):" : "import os\n\n\ndef main(argv):\n    path = argv[1]\n";
            Assert.Equal(tokenizer.Encode(prompt, tokenizer.AddBosToken), Ids("prompt_ids"));
            Assert.InRange(Ids("vanilla_ids").Length, 1, 16);
            Assert.Equal(Ids("vanilla_ids"), Ids("kangaroo_ids"));
            Assert.True(line.RootElement.GetProperty("vanilla_decode_seconds").GetDouble() >= 0);
            Assert.True(line.RootElement.GetProperty("kangaroo_decode_seconds").GetDouble() >= 0);
        }
    }

    /// <summary><c>--batch 4 --tree</c>: several sequences each drafting a token tree, one verification pass for all, outputs those of vanilla alone.</summary>
    [Fact]
    public void BatchedTokenTreesReportIdenticalOutputs()
    {
        using var dir = new TestDirectory("cli-bench-tree");
        string prompts = dir.Combine("prompts.jsonl"), json = dir.Combine("bench.json");
        File.WriteAllLines(prompts, new[] { "def fibonacci(n):", "import os\n", "class Stack:\n", "for i in range(10):", "def main():\n" }
            .Select((prompt, id) => JsonSerializer.Serialize(new { id, prompt })));

        var r = AssertSuccess(Run("bench", "--backend", "cpu", "--no-steps", "--prompts", prompts, "--max-tokens", "12", "--batch", "4", "--tree",
            "--json", json));

        Assert.Contains("Kangaroo token trees (top-k 10, threshold 0.1, budget 16)", r.Stdout);
        using var figures = JsonDocument.Parse(File.ReadAllText(json));
        int vanillaTokens = figures.RootElement.GetProperty("end_to_end").GetProperty("vanilla_tokens").GetInt32();
        var trees = figures.RootElement.GetProperty("batch_tree").EnumerateArray().ToArray();
        var size = Assert.Single(trees);
        Assert.Equal(4, size.GetProperty("sequences").GetInt32());
        Assert.Equal(10, size.GetProperty("tree").GetProperty("top_k").GetInt32());
        Assert.True(size.GetProperty("identical_outputs").GetBoolean());
        Assert.Equal(5, size.GetProperty("kangaroo_identical_prompts").GetInt32());
        Assert.Equal(vanillaTokens, size.GetProperty("kangaroo_tokens").GetInt32());
        Assert.True(size.GetProperty("mean_accepted").GetDouble() >= 1);
    }

    [Fact]
    public void MissingOrMalformedPromptsAreBadInput()
    {
        using var dir = new TestDirectory("cli-bench-bad");
        AssertBadInput(Run("bench", "--backend", "cpu", "--prompts", dir.Combine("absent.jsonl")), "absent.jsonl", "not found");
        string malformed = dir.Combine("malformed.jsonl");
        File.WriteAllLines(malformed, ["{\"prompt\": \"def f():\"}", "{\"text\": 1}"]);
        AssertBadInput(Run("bench", "--backend", "cpu", "--prompts", malformed), "malformed.jsonl", "line 2", "\"prompt\"");
        string notJson = dir.Combine("text.jsonl");
        File.WriteAllText(notJson, "def f():\n");
        AssertBadInput(Run("bench", "--backend", "cpu", "--prompts", notJson), "text.jsonl", "line 1", "not JSON");
        AssertBadInput(Run("bench", "--backend", "cpu", "--no-steps"), "--no-steps");
        AssertBadInput(Run("bench", "--backend", "cpu", "--outputs", dir.Combine("o.jsonl")), "--outputs needs --prompts");
        AssertBadInput(Run("bench", "--backend", "cpu", "--batch", "4"), "--batch needs --prompts");
        // --adapter serves the end-to-end runs too: a missing one is named, not silently replaced by the bundled adapter.
        string onePrompt = dir.Combine("one.jsonl");
        File.WriteAllText(onePrompt, "{\"prompt\": \"def f():\"}\n");
        AssertBadInput(Run("bench", "--backend", "cpu", "--no-steps", "--prompts", onePrompt, "--adapter", dir.Combine("no-adapter")), "no-adapter");
        string good = dir.Combine("good.jsonl");
        File.WriteAllText(good, "{\"prompt\": \"def f():\"}\n");
        AssertBadInput(Run("bench", "--backend", "cpu", "--prompts", good, "--batch", "1,0"), "--batch", "1,0");
    }

    [Fact]
    public void StepTimingsReportVerifyCostsByRowCountInTheJson()
    {
        using var dir = new TestDirectory();
        string json = dir.Combine("steps.json");
        var r = AssertSuccess(Run("bench", "--backend", "cpu", "--context", "16", "--repetitions", "1", "--verify-rows", "3,2",
            "--kernels", "--kernel-rows", "2", "--json", json));
        Assert.Contains("verify  3:", r.Stdout);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        // Verify 1 is always timed: the ratios are against it.
        Assert.Equal(["1", "2", "3"], root.GetProperty("verify_ms").EnumerateObject().Select(p => p.Name));
        var ratios = root.GetProperty("verify_over_verify1");
        Assert.Equal(["2", "3"], ratios.EnumerateObject().Select(p => p.Name));
        double verify1 = root.GetProperty("verify_ms").GetProperty("1").GetDouble();
        Assert.Equal(root.GetProperty("verify_ms").GetProperty("3").GetDouble() / verify1, ratios.GetProperty("3").GetDouble(), 9);
        // The CPU backend does not count kernel launches: null, not a made-up number.
        Assert.Equal(JsonValueKind.Null, root.GetProperty("launches_per_decode").ValueKind);
        Assert.All(root.GetProperty("ops").EnumerateArray(), op => Assert.StartsWith("2", op.GetProperty("shape").GetString()));
    }

    [Fact]
    public void BadRowListsAreBadInput()
    {
        AssertBadInput(Run("bench", "--backend", "cpu", "--verify-rows", "1,x"), "--verify-rows", "1,x");
        AssertBadInput(Run("bench", "--backend", "cpu", "--kernels", "--kernel-rows", "0"), "--kernel-rows", "0");
        AssertBadInput(Run("bench", "--backend", "cpu", "--kernel-rows", "4"), "--kernel-rows needs --kernels");
    }
}
