using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Generation;

/// <summary>The public generation API end to end on a tiny model with the fixture tokenizer.</summary>
public sealed class GenerationTests : IDisposable
{
    private readonly TestDirectory _dir = new();
    private readonly CpuBackend _backend = new();
    private readonly LanguageModel _model;
    private const string Prompt = "def fibonacci(n):\n    ";

    public GenerationTests()
    {
        TestModels.WriteWithAdapter(_dir.Path);
        _model = LanguageModel.Load(_dir.Path, new ModelLoadOptions { Backend = _backend });
    }

    public void Dispose()
    {
        _model.Dispose();
        _backend.Dispose();
        _dir.Dispose();
    }

    private static GenerationOptions Greedy(int tokens = 40) => new() { MaxNewTokens = tokens, StopAtEndOfSequence = false };

    [Fact]
    public void GreedyIsDeterministicAndTextMatchesTheTokens()
    {
        var first = _model.Generate(Prompt, Greedy());
        var second = _model.Generate(Prompt, Greedy());
        Assert.Equal(first.TokenIds, second.TokenIds);
        Assert.Equal(40, first.TokenIds.Count);
        Assert.Equal(StopReason.MaxTokens, first.StopReason);
        Assert.Equal(_model.Tokenizer.Decode(first.TokenIds.ToArray()), first.Text);
        Assert.Equal(_model.Tokenizer.Encode(Prompt), first.PromptTokenIds);
        Assert.True(first.Timings.PromptTokens > 0);
        Assert.Null(first.Speculation);
    }

    [Fact]
    public void SamplingWithASeedIsReproducible()
    {
        var options = new GenerationOptions { MaxNewTokens = 30, Temperature = 1.0f, TopK = 50, TopP = 0.9f, Seed = 5, StopAtEndOfSequence = false };
        var a = _model.Generate(Prompt, options);
        var b = _model.Generate(Prompt, options);
        var c = _model.Generate(Prompt, options with { Seed = 6 });
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.NotEqual(a.TokenIds, c.TokenIds);
    }

    [Fact]
    public async Task StreamingPiecesAddUpToTheResult()
    {
        var stream = _model.GenerateStreaming(Prompt, Greedy());
        var pieces = new List<string>();
        await foreach (string piece in stream) pieces.Add(piece);
        Assert.Equal(_model.Generate(Prompt, Greedy()).Text, string.Concat(pieces));
        Assert.Equal(string.Concat(pieces), stream.Result.Text);
        Assert.True(pieces.Count > 1);
    }

    [Fact]
    public async Task StopStringsEndTheTextAndAreNeverStreamed()
    {
        string full = _model.Generate(Prompt, Greedy(60)).Text;
        Assert.True(full.Length > 12, $"generated text too short to cut: '{full}'");
        string stop = full.Substring(full.Length / 2, 3);
        int at = full.IndexOf(stop, StringComparison.Ordinal);
        var options = Greedy(60) with { StopStrings = [stop] };

        var result = _model.Generate(Prompt, options);
        Assert.Equal(StopReason.StopString, result.StopReason);
        Assert.Equal(full[..at], result.Text);

        var stream = _model.GenerateStreaming(Prompt, options);
        var streamed = new List<string>();
        await foreach (string piece in stream) streamed.Add(piece);
        Assert.Equal(full[..at], string.Concat(streamed));
    }

    [Fact]
    public void EndOfSequenceStopsAndIsNotPartOfTheOutput()
    {
        var reference = _model.Generate(Prompt, Greedy(10));
        int eos = reference.TokenIds[4];
        int firstAt = reference.TokenIds.ToList().IndexOf(eos);
        string config = Path.Combine(_dir.Path, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"eos_token_id\": 2", $"\"eos_token_id\": {eos}"));
        using var model = LanguageModel.Load(_dir.Path, new ModelLoadOptions { Backend = _backend, LoadAdapter = false });
        var result = model.Generate(Prompt, new GenerationOptions { MaxNewTokens = 10 });
        Assert.Equal(StopReason.EndOfSequence, result.StopReason);
        Assert.Equal(reference.TokenIds.Take(firstAt), result.TokenIds);
    }

    [Fact]
    public void TheContextBoundsTheOutputAndThePrompt()
    {
        using var session = _model.CreateSession(contextLength: 20);
        int promptTokens = _model.Tokenizer.Encode(Prompt).Length;
        var result = session.Generate(Prompt, Greedy(100));
        Assert.Equal(StopReason.ContextFull, result.StopReason);
        Assert.Equal(20 - promptTokens + 1, result.TokenIds.Count);

        string longPrompt = string.Concat(Enumerable.Repeat(Prompt, 20));
        var e = Assert.Throws<InvalidRequestException>(() => session.Generate(longPrompt, Greedy()));
        Assert.Contains("the context holds 20", e.Message);
    }

    [Fact]
    public void ConcurrentGenerationsMatchSequentialOnes()
    {
        string[] prompts = ["import os\n", "class Stack:\n", "def add(a, b):\n", "for i in range(10):\n"];
        var expected = prompts.Select(p => _model.Generate(p, Greedy(25)).TokenIds).ToArray();
        var actual = new IReadOnlyList<int>[prompts.Length];
        Parallel.For(0, prompts.Length, new ParallelOptions { MaxDegreeOfParallelism = prompts.Length },
            i => actual[i] = _model.Generate(prompts[i], Greedy(25)).TokenIds);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(expected[i], actual[i]);
    }

    [Fact]
    public void ASessionReusesItsCachedPrefixWithoutChangingTheOutput()
    {
        using var session = _model.CreateSession();
        session.Generate("def add(a, b):\n", Greedy(10));
        var reused = session.Generate("def add(a, b):\n    return", Greedy(20));
        var fresh = _model.Generate("def add(a, b):\n    return", Greedy(20));
        Assert.Equal(fresh.TokenIds, reused.TokenIds);
    }

    [Fact]
    public void CancellationStopsTheGeneration()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var result = _model.Generate(Prompt, Greedy(), cts.Token);
        Assert.Equal(StopReason.Cancelled, result.StopReason);
        Assert.Empty(result.TokenIds);
    }

    [Fact]
    public void KangarooGreedyThroughTheApiEqualsVanillaAndReportsStats()
    {
        Assert.NotNull(_model.Adapter);
        var vanilla = _model.Generate(Prompt, Greedy(50));
        var kangaroo = _model.Generate(Prompt, Greedy(50) with { Speculation = new KangarooOptions() });
        Assert.Equal(vanilla.TokenIds, kangaroo.TokenIds);
        Assert.Equal(vanilla.Text, kangaroo.Text);
        var stats = Assert.IsType<SpeculativeStats>(kangaroo.Speculation);
        Assert.True(stats.Rounds > 0 && stats.Drafted > 0);
        Assert.Equal(49, stats.Emitted);
    }

    [Fact]
    public void KangarooWithoutAnAdapterIsAClearError()
    {
        using var model = LanguageModel.Load(_dir.Path, new ModelLoadOptions { Backend = _backend, LoadAdapter = false });
        var e = Assert.Throws<InvalidRequestException>(() => model.Generate(Prompt, Greedy() with { Speculation = new KangarooOptions() }));
        Assert.Contains("needs an adapter", e.Message);
    }
}
