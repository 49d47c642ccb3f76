using Kangaroo.Generation;
using Kangaroo.Serving;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Serving;

/// <summary>Continuous batching: requests that join and leave the running batch at any round get a generation alone's tokens.</summary>
public sealed class ContinuousBatcherTests : IDisposable
{
    private static readonly KangarooOptions Kangaroo = new();
    private readonly LanguageModel _model = ServingModels.Load(TestModels.DemoDirectory, context: 256);

    public void Dispose() => _model.Dispose();

    private CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static readonly string[] Prompts =
    [
        "def fibonacci(n):", "import os\n", "class Matrix:\n    def __init__(self", "# sort a list\n", "def test_add():\n    assert",
        "for i in range(", "from sympy import", "def parse(text):\n    \"\"\"", "x = [", "if __name__ == '__main__':",
    ];

    [Fact]
    public async Task StaggeredRequestsMixingKangarooAndPlainDecodingAreEachAGenerationAlone()
    {
        await using var batcher = new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 3, Speculation = Kangaroo });
        var requests = new List<(BatchedGeneration Request, Task<string> Streamed, GenerationOptions Options, string Prompt)>();
        for (int i = 0; i < Prompts.Length; i++)
        {
            // Different lengths and kinds so that sequences join and leave between rounds of the others.
            var options = new GenerationOptions { MaxNewTokens = 6 + 5 * (i % 4), Speculation = i % 3 == 0 ? null : Kangaroo };
            var request = batcher.Submit(Prompts[i], options, Cancel);
            requests.Add((request, Concatenate(request), options, Prompts[i]));
            if (i % 2 == 1) await Task.Delay(15, Cancel);
        }
        foreach (var (request, streamed, options, prompt) in requests)
        {
            var result = await request.Completion;
            var alone = _model.Generate(prompt, options with { Speculation = null });
            Assert.Equal(alone.TokenIds, result.TokenIds);
            Assert.Equal(alone.Text, result.Text);
            Assert.Equal(result.Text, await streamed);
            Assert.Equal(options.Speculation is null, result.Speculation is null);
        }
        var stats = batcher.Statistics;
        Assert.Equal(Prompts.Length, stats.RequestsFinished);
        Assert.Equal(requests.Sum(r => r.Request.Completion.Result.TokenIds.Count), stats.TokensGenerated);
        Assert.True(stats.Drafted > 0 && stats.Accepted > 0, $"drafted {stats.Drafted}, accepted {stats.Accepted}");
        Assert.Equal(0, batcher.ActiveSequences);
    }

    [Fact]
    public async Task SampledRequestsWithASeedRepeat()
    {
        await using var batcher = new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 2 });
        var options = new GenerationOptions { MaxNewTokens = 20, Temperature = 0.9f, TopK = 30, Seed = 11 };
        var first = batcher.Submit(Prompts[0], options, Cancel);
        var other = batcher.Submit(Prompts[1], options with { Seed = 12 }, Cancel);
        var again = batcher.Submit(Prompts[0], options, Cancel);
        Assert.Equal((await first.Completion).TokenIds, (await again.Completion).TokenIds);
        // Plain decoding draws as a generation alone does with the same seed.
        Assert.Equal(_model.Generate(Prompts[1], options with { Seed = 12 }).TokenIds, (await other.Completion).TokenIds);
    }

    [Fact]
    public async Task ACancelledRequestFreesItsSlotForTheNext()
    {
        await using var batcher = new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 1 });
        using var cancel = new CancellationTokenSource();
        var endless = batcher.Submit(Prompts[0], new GenerationOptions { MaxNewTokens = 250, StopAtEndOfSequence = false }, cancel.Token);
        var waiting = batcher.Submit(Prompts[1], new GenerationOptions { MaxNewTokens = 8 }, Cancel);
        await using (var pieces = endless.ReadPiecesAsync(Cancel).GetAsyncEnumerator(Cancel)) Assert.True(await pieces.MoveNextAsync());
        cancel.Cancel();
        var cancelled = await endless.Completion;
        Assert.Equal(StopReason.Cancelled, cancelled.StopReason);
        Assert.InRange(cancelled.TokenIds.Count, 1, 249);
        Assert.Equal(_model.Generate(Prompts[1], new GenerationOptions { MaxNewTokens = 8 }).TokenIds, (await waiting.Completion).TokenIds);
    }

    [Fact]
    public async Task AFullQueueAndAStoppingEngineRefuseWithServerBusy()
    {
        var batcher = new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 1, MaxQueuedRequests = 1 });
        var long1 = batcher.Submit(Prompts[0], new GenerationOptions { MaxNewTokens = 200, StopAtEndOfSequence = false }, Cancel);
        await WaitUntil(() => batcher.ActiveSequences == 1);
        var queued = batcher.Submit(Prompts[1], new GenerationOptions { MaxNewTokens = 4 }, Cancel);
        var full = Assert.Throws<ServerBusyException>(() => batcher.Submit(Prompts[2], null, Cancel));
        Assert.False(full.ShuttingDown);
        Assert.Contains("busy", full.Message);

        // A short drain: the running request is cancelled, the queued one never starts.
        var stopping = batcher.StopAsync(TimeSpan.FromMilliseconds(50));
        var refused = Assert.Throws<ServerBusyException>(() => batcher.Submit(Prompts[2], null, Cancel));
        Assert.True(refused.ShuttingDown);
        await stopping;
        Assert.Equal(StopReason.Cancelled, (await long1.Completion).StopReason);
        Assert.Equal(StopReason.Cancelled, (await queued.Completion).StopReason);
        await batcher.DisposeAsync();
    }

    [Fact]
    public async Task AGracefulStopLetsRunningRequestsFinish()
    {
        var batcher = new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 2 });
        var options = new GenerationOptions { MaxNewTokens = 24 };
        var running = batcher.Submit(Prompts[3], options, Cancel);
        await batcher.StopAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(_model.Generate(Prompts[3], options).TokenIds, (await running.Completion).TokenIds);
        await batcher.DisposeAsync();
    }

    [Fact]
    public async Task RequestsTheEngineCannotServeAsAskedAreRefusedByName()
    {
        await using var plain = new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 1 });
        Assert.Contains("not enabled", Assert.Throws<InvalidRequestException>(() =>
            plain.Submit(Prompts[0], new GenerationOptions { Speculation = Kangaroo })).Message);
        Assert.Contains("context holds 256", Assert.Throws<InvalidRequestException>(() => plain.Submit(new int[300])).Message);
        Assert.Contains("outside the vocabulary", Assert.Throws<InvalidRequestException>(() => plain.Submit([1, 1 << 20])).Message);
        Assert.Contains("max new tokens", Assert.Throws<InvalidRequestException>(() => plain.Submit("x", new GenerationOptions { MaxNewTokens = 0 })).Message);

        await using var kangaroo = new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 1, Speculation = Kangaroo });
        var other = Assert.Throws<InvalidRequestException>(() => kangaroo.Submit(Prompts[0], new GenerationOptions { Speculation = Kangaroo with { MaxDraftSteps = 3 } }));
        Assert.Contains("drafts with", other.Message);
        Assert.Throws<InvalidRequestException>(() => new ContinuousBatcher(_model, new ContinuousBatchingOptions { MaxSequences = 0 }));
    }

    private static async Task<string> Concatenate(BatchedGeneration request)
    {
        var text = new System.Text.StringBuilder();
        await foreach (string piece in request.ReadPiecesAsync()) text.Append(piece);
        return text.ToString();
    }

    internal static async Task WaitUntil(Func<bool> condition, int timeoutMs = 20_000)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.ElapsedMilliseconds > timeoutMs) throw new TimeoutException("the condition did not hold in time");
            await Task.Delay(5);
        }
    }
}
