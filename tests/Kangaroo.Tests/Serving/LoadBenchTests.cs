using Kangaroo.LoadBench;
using Kangaroo.Server;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Serving;

/// <summary>The load client (bench/Kangaroo.LoadBench) against a real server: every request counted, every figure measured.</summary>
public sealed class LoadBenchTests
{
    [Fact]
    public async Task TheLoadClientMeasuresEveryModeAndConcurrency()
    {
        using var model = ServingModels.Load(TestModels.DemoDirectory, context: 256);
        await using var client = await ServerClient.StartAsync(model, new KangarooServerOptions { Speculation = new KangarooOptions(), MaxSequences = 4 });
        var options = new LoadOptions
        {
            Url = client.Server.BaseAddress, Concurrency = [1, 3], Requests = 3, MaxTokens = 8, Warmup = 1,
            Prompts = ["def add(a, b):", "import os\n"],
        };
        var results = await LoadBenchmark.RunAsync(options, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(["vanilla", "kangaroo", "vanilla", "kangaroo"], results.Select(r => r.Mode));
        foreach (var r in results)
        {
            Assert.Equal(0, r.Errors);
            // ignore_eos: exactly max_tokens each, as the usage chunk counts them.
            Assert.Equal(3 * 8, r.OutputTokens);
            Assert.True(r.TimeToFirstTokenP50 > 0 && r.TimeToFirstTokenP99 >= r.TimeToFirstTokenP50, r.ToString());
            Assert.True(double.IsFinite(r.InterTokenP50) && r.TokensPerSecond > 0, r.ToString());
        }
        string table = LoadReport.Markdown(results, options);
        Assert.Contains("Kangaroo ÷ vanilla throughput at 3 clients", table);
        Assert.Contains("\"ttft_p99_ms\"", LoadReport.Json(results, options));
        // 1 warm-up per mode plus 3 per concurrency and mode.
        Assert.Equal(2 + 4 * 3, client.Server.Batcher.Statistics.RequestsFinished);
    }

    [Fact]
    public void BadOptionsAreNamed()
    {
        Assert.Contains("--modes", Assert.Throws<LoadUsageException>(() => LoadOptions.Parse(["--modes", "medusa"])).Message);
        Assert.Contains("--concurrency", Assert.Throws<LoadUsageException>(() => LoadOptions.Parse(["--concurrency", "1,x"])).Message);
        Assert.Contains("unknown option", Assert.Throws<LoadUsageException>(() => LoadOptions.Parse(["--fast"])).Message);
        Assert.Null(LoadOptions.Parse(["--help"]));
        Assert.Contains("not found", Assert.Throws<LoadUsageException>(() => LoadOptions.Parse(["--prompts", "/nonexistent/prompts.jsonl"])).Message);
        var parsed = LoadOptions.Parse(["--concurrency", "2,4", "--max-tokens", "16", "--modes", "kangaroo"])!;
        Assert.Equal([2, 4], parsed.Concurrency);
        Assert.Equal(16, parsed.MaxTokens);
        Assert.Equal(["kangaroo"], parsed.Modes);
        Assert.Equal(8, parsed.RequestsAt(2));
        Assert.Equal(64, parsed.RequestsAt(32));
    }
}
