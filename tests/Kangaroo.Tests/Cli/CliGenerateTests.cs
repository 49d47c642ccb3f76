using System.Text.RegularExpressions;
using Kangaroo.Tests.TinyModels;
using Xunit;
using static Kangaroo.Tests.CommandLine.CliRunner;

namespace Kangaroo.Tests.CommandLine;

/// <summary>One tiny model (with an agreeing adapter in kangaroo-adapter/) shared by the generate tests.</summary>
public sealed class CliModelFixture : IDisposable
{
    private readonly TestDirectory _dir = new("cli");

    public CliModelFixture()
    {
        ModelDirectory = _dir.Combine("model");
        TestModels.WriteWithAdapter(ModelDirectory);
    }

    /// <summary>A model directory with the adapter in its kangaroo-adapter/ subfolder (4 layers, trained exit layer 2).</summary>
    public string ModelDirectory { get; }

    public string AdapterDirectory => Path.Combine(ModelDirectory, "kangaroo-adapter");

    public void Dispose() => _dir.Dispose();
}

public sealed partial class CliGenerateTests(CliModelFixture fixture) : IClassFixture<CliModelFixture>
{
    private const string Prompt = "The quick brown fox";

    [GeneratedRegex(@"^\[(?:cpu|cuda|ilgpu)\] prompt tokens: (\d+), new tokens: (\d+), prefill: \d+\.\d tok/s, decode: \d+\.\d tok/s, stop: [a-z ]+$")]
    private static partial Regex StatsLine();

    private string[] Model => ["--model", fixture.ModelDirectory];

    private CliResult Generate(params string[] args) => AssertSuccess(Run(["generate", .. Model, .. args]));

    [Fact]
    public void PromptArgumentGivesTextOnStdoutAndOneStatsLine()
    {
        var r = Generate("--max-tokens", "8", "--ignore-eos", Prompt);
        Assert.EndsWith("\n", r.Stdout);
        Assert.NotEqual("", r.Stdout.Trim());
        var line = Assert.Single(r.StderrLines);
        var m = StatsLine().Match(line);
        Assert.True(m.Success, line);
        Assert.True(int.Parse(m.Groups[1].Value) >= 4, line);
        Assert.Equal("8", m.Groups[2].Value);
        Assert.EndsWith("stop: max tokens", line);
    }

    [Fact]
    public void PromptFromStandardInputMatchesPromptArgument()
    {
        var fromArgument = Generate("--max-tokens", "6", "--ignore-eos", Prompt);
        var fromStdin = AssertSuccess(RunWithInput(Prompt, ["generate", .. Model, "--max-tokens", "6", "--ignore-eos"]));
        var fromDash = AssertSuccess(RunWithInput(Prompt, ["generate", .. Model, "--max-tokens", "6", "--ignore-eos", "-"]));
        Assert.Equal(fromArgument.Stdout, fromStdin.Stdout);
        Assert.Equal(fromArgument.Stdout, fromDash.Stdout);
    }

    [Fact]
    public void MaxTokensBoundsTheNewTokens()
    {
        foreach (int n in new[] { 1, 3, 12 })
        {
            var r = Generate("--max-tokens", n.ToString(), "--ignore-eos", Prompt);
            Assert.Contains($", new tokens: {n}, ", r.Stderr);
        }
        var shortRun = Generate("--max-tokens", "3", "--ignore-eos", Prompt);
        var longRun = Generate("--max-tokens", "12", "--ignore-eos", Prompt);
        Assert.StartsWith(shortRun.Stdout.TrimEnd('\n'), longRun.Stdout);
    }

    [Fact]
    public void SameSeedSameSampledText()
    {
        string[] sampling = ["--temperature", "0.8", "--max-tokens", "16", "--ignore-eos"];
        var a = Generate([.. sampling, "--seed", "7", Prompt]);
        var b = Generate([.. sampling, "--seed", "7", Prompt]);
        var c = Generate([.. sampling, "--seed", "8", Prompt]);
        Assert.Equal(a.Stdout, b.Stdout);
        Assert.NotEqual(a.Stdout, c.Stdout);
        var greedy = Generate("--max-tokens", "16", "--ignore-eos", Prompt);
        Assert.NotEqual(greedy.Stdout, a.Stdout);
    }

    [Fact]
    public void StopStringEndsTheTextBeforeIt()
    {
        string full = Generate("--max-tokens", "24", "--ignore-eos", Prompt).Stdout.TrimEnd('\n');
        // A stop string of two non-space characters from the second half of the text.
        int at = Enumerable.Range(full.Length / 2, full.Length - full.Length / 2 - 1)
            .First(i => !char.IsWhiteSpace(full[i]) && !char.IsWhiteSpace(full[i + 1]) && !char.IsSurrogate(full[i]) && !char.IsSurrogate(full[i + 1]));
        string stop = full.Substring(at, 2);
        var r = Generate("--max-tokens", "24", "--ignore-eos", "--stop", stop, Prompt);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)] + "\n", r.Stdout);
        Assert.EndsWith("stop: stop string", Assert.Single(r.StderrLines));
    }

    [Fact]
    public void QuietPrintsNoStats()
    {
        var loud = Generate("--max-tokens", "5", "--ignore-eos", Prompt);
        var quiet = Generate("--max-tokens", "5", "--ignore-eos", "--quiet", Prompt);
        Assert.Equal("", quiet.Stderr);
        Assert.Equal(loud.Stdout, quiet.Stdout);
    }

    [Fact]
    public void KangarooGivesTheSameGreedyTextWithItsStatsLine()
    {
        string[] common = ["--max-tokens", "24", "--ignore-eos", Prompt];
        var vanilla = Generate(common);
        var kangaroo = Generate(["--kangaroo", .. common]);
        Assert.Equal(vanilla.Stdout, kangaroo.Stdout);
        Assert.Equal(2, kangaroo.StderrLines.Length);
        Assert.Matches(StatsLine(), kangaroo.StderrLines[0]);
        Assert.Contains(", new tokens: 24, ", kangaroo.StderrLines[0]);
        Assert.Matches(@"^\[kangaroo\] exit layer 2/4, draft steps 6, threshold 0\.6: rounds \d+, drafted \d+, accepted \d+ \(\d+\.\d%\), mean accepted tokens per round \d+\.\d\d, draft [\d.]+ ms, verify [\d.]+ ms$",
            kangaroo.StderrLines[1]);
        // The agreeing adapter gets drafts accepted: fewer rounds than tokens.
        int rounds = int.Parse(Regex.Match(kangaroo.StderrLines[1], @"rounds (\d+)").Groups[1].Value);
        Assert.True(rounds < 24, kangaroo.StderrLines[1]);
    }

    [Fact]
    public void KangarooWithAnAdapterElsewhere()
    {
        using var dir = new TestDirectory("cli-adapter");
        string model = dir.Combine("model"), adapter = dir.Combine("elsewhere");
        TestModels.WriteWithAdapter(model);
        Directory.Move(Path.Combine(model, "kangaroo-adapter"), adapter);
        string[] common = ["--model", model, "--max-tokens", "16", "--ignore-eos", Prompt];
        var vanilla = AssertSuccess(Run(["generate", .. common]));
        var kangaroo = AssertSuccess(Run(["generate", "--kangaroo", "--adapter", adapter, .. common]));
        Assert.Equal(vanilla.Stdout, kangaroo.Stdout);
        Assert.StartsWith("[kangaroo] exit layer 2/4", kangaroo.StderrLines[1]);
    }

    [Theory]
    [InlineData("1", "1", "0")]
    [InlineData("3", "3", "1")]
    [InlineData("2", "10", "0.3")]
    public void KangarooSettingsChangeTheWorkNotTheText(string exitLayer, string draftSteps, string threshold)
    {
        string[] common = ["--max-tokens", "20", "--ignore-eos", Prompt];
        var vanilla = Generate(common);
        var kangaroo = Generate(["--kangaroo", "--exit-layer", exitLayer, "--draft-steps", draftSteps, "--threshold", threshold, .. common]);
        Assert.Equal(vanilla.Stdout, kangaroo.Stdout);
        Assert.StartsWith($"[kangaroo] exit layer {exitLayer}/4, draft steps {draftSteps}, threshold {threshold}: ", kangaroo.StderrLines[1]);
    }

    [Fact]
    public void KangarooSampledWithASeedIsReproducible()
    {
        string[] args = ["--kangaroo", "--temperature", "0.8", "--seed", "5", "--max-tokens", "16", "--ignore-eos", Prompt];
        Assert.Equal(Generate(args).Stdout, Generate(args).Stdout);
    }

    [Fact]
    public void ContextFullStopsCleanly()
    {
        var r = Generate("--context", "12", "--max-tokens", "100", "--ignore-eos", Prompt);
        Assert.EndsWith("stop: context full", Assert.Single(r.StderrLines));
    }
}
