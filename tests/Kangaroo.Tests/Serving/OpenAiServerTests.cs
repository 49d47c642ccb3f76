using System.ClientModel;
using System.Text.Json.Nodes;
using Kangaroo.Generation;
using Kangaroo.Server;
using Kangaroo.Speculative;
using OpenAI.Chat;
using Xunit;

namespace Kangaroo.Tests.Serving;

/// <summary>
/// <c>kangaroo serve</c>'s server over loopback with the official OpenAI .NET SDK as the client: its answers are the
/// library's greedy output, concurrent streams each get their own, and bad requests get OpenAI-style errors.
/// </summary>
public sealed class OpenAiServerTests : IDisposable
{
    private readonly TestDirectory _directory = new("serving");
    private readonly LanguageModel _model;

    public OpenAiServerTests()
    {
        _model = ServingModels.Load(ServingModels.WriteTemplatedDemo(_directory), context: 512);
    }

    public void Dispose()
    {
        _model.Dispose();
        _directory.Dispose();
    }

    private CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static readonly KangarooServerOptions WithKangaroo = new() { Speculation = new KangarooOptions(), MaxSequences = 16, MaxQueuedRequests = 64 };

    private GenerationResult Greedy(string prompt, int maxTokens, bool addBos = true) =>
        _model.Generate(prompt, new GenerationOptions { MaxNewTokens = maxTokens, AddBos = addBos ? null : false });

    [Fact]
    public async Task ChatAndCompletionsStreamingOrNotAreTheLibrarysGreedyOutput()
    {
        await using var client = await ServerClient.StartAsync(_model, WithKangaroo);
        const string prompt = "def fibonacci(n):";
        var expected = Greedy(prompt, 24);

        foreach (bool kangaroo in new[] { true, false })
        {
            var whole = await client.CompleteAsync(new { model = "demo", prompt, max_tokens = 24, temperature = 0, kangaroo }, Cancel);
            Assert.Equal(expected.Text, (string)whole["choices"]![0]!["text"]!);
            Assert.Equal("text_completion", (string)whole["object"]!);
            Assert.Equal(expected.StopReason == StopReason.MaxTokens ? "length" : "stop", (string)whole["choices"]![0]!["finish_reason"]!);
            Assert.Equal(expected.PromptTokenIds.Count, (int)whole["usage"]!["prompt_tokens"]!);
            Assert.Equal(expected.TokenIds.Count, (int)whole["usage"]!["completion_tokens"]!);
            Assert.Equal(kangaroo, whole["usage"]!["kangaroo"] is not null);

            var events = await client.StreamAsync("v1/completions",
                new { model = "demo", prompt, max_tokens = 24, temperature = 0, kangaroo, stream = true, stream_options = new { include_usage = true } },
                cancellation: Cancel);
            Assert.Equal("[DONE]", events[^1]);
            Assert.Equal(expected.Text, ServerClient.StreamedText(events, chat: false));
            var usage = JsonNode.Parse(events[^2])!["usage"]!;
            Assert.Equal(expected.TokenIds.Count, (int)usage["completion_tokens"]!);
        }

        // Chat through the SDK: the model's template renders the conversation, tokenized without an added BOS.
        List<ChatMessage> conversation = [new SystemChatMessage("# helpers"), new UserChatMessage("def add(a, b):")];
        var rendered = Greedy(ServingModels.Render(("system", "# helpers"), ("user", "def add(a, b):")), 20, addBos: false);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 20, Temperature = 0 };
        ChatCompletion completion = await client.Chat.CompleteChatAsync(conversation, options, Cancel);
        Assert.Equal(rendered.Text, completion.Content.Single().Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(rendered.PromptTokenIds.Count, completion.Usage.InputTokenCount);
        Assert.Equal(rendered.TokenIds.Count, completion.Usage.OutputTokenCount);
        Assert.Equal(rendered.StopReason == StopReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, completion.FinishReason);

        var streamed = new System.Text.StringBuilder();
        ChatTokenUsage? streamedUsage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in client.Chat.CompleteChatStreamingAsync(conversation, options, Cancel))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            streamedUsage ??= update.Usage;
            finish ??= update.FinishReason;
        }
        Assert.Equal(rendered.Text, streamed.ToString());
        Assert.Equal(rendered.TokenIds.Count, streamedUsage!.OutputTokenCount);
        Assert.Equal(completion.FinishReason, finish);
    }

    [Fact]
    public async Task StopSequencesSeedsAndSamplingGoThrough()
    {
        await using var client = await ServerClient.StartAsync(_model, WithKangaroo);
        const string prompt = "import os\n";
        var stopped = _model.Generate(prompt, new GenerationOptions { MaxNewTokens = 40, StopStrings = ["\n\n"] });
        var whole = await client.CompleteAsync(new { model = "demo", prompt, max_tokens = 40, temperature = 0, stop = "\n\n" }, Cancel);
        Assert.Equal(stopped.Text, (string)whole["choices"]![0]!["text"]!);

        // Sampling is seeded: plain decoding in the batch draws as a generation alone does.
        var sampled = _model.Generate(prompt, new GenerationOptions { MaxNewTokens = 20, Temperature = 0.8f, TopP = 0.9f, Seed = 5 });
        var first = await client.CompleteAsync(new { model = "demo", prompt, max_tokens = 20, temperature = 0.8, top_p = 0.9, seed = 5, kangaroo = false }, Cancel);
        Assert.Equal(sampled.Text, (string)first["choices"]![0]!["text"]!);
        var withKangaroo = await client.CompleteAsync(new { model = "demo", prompt, max_tokens = 20, temperature = 0.8, seed = 5 }, Cancel);
        var again = await client.CompleteAsync(new { model = "demo", prompt, max_tokens = 20, temperature = 0.8, seed = 5 }, Cancel);
        Assert.Equal((string)withKangaroo["choices"]![0]!["text"]!, (string)again["choices"]![0]!["text"]!);
    }

    [Fact]
    public async Task SixtyFourConcurrentStreamsEachGetTheirSequentialGreedyOutput()
    {
        const int clients = 64, tokens = 12;
        var prompts = Enumerable.Range(0, clients).Select(i => $"def function_{i}(x, y):\n    ").ToArray();
        var expected = prompts.Select(p => Greedy(ServingModels.Render(("user", p)), tokens, addBos: false).Text).ToArray();
        await using var client = await ServerClient.StartAsync(_model, WithKangaroo);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = tokens, Temperature = 0 };
        var streams = prompts.Select(async prompt =>
        {
            var text = new System.Text.StringBuilder();
            await foreach (var update in client.Chat.CompleteChatStreamingAsync([new UserChatMessage(prompt)], options, Cancel))
            {
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
            }
            return text.ToString();
        }).ToArray();
        string[] received = await Task.WhenAll(streams);
        for (int i = 0; i < clients; i++) Assert.Equal(expected[i], received[i]);
        var stats = client.Server.Batcher.Statistics;
        Assert.Equal(clients, stats.RequestsFinished);
        Assert.Equal(0, stats.RequestsFailed);
    }

    [Fact]
    public async Task BadRequestsGetTheirStatusAndErrorJsonAndTheServerKeepsServing()
    {
        await using var client = await ServerClient.StartAsync(_model, WithKangaroo with { ApiKey = "sesame", MaxRequestBodyBytes = 4096 });
        async Task Expect(int status, string? code, string? param, string body, string path = "v1/completions")
        {
            var (actual, json) = await client.PostRawAsync(path, body, Cancel);
            Assert.Equal(status, actual);
            var error = json!["error"]!;
            Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]));
            Assert.False(string.IsNullOrWhiteSpace((string?)error["type"]));
            if (code is not null) Assert.Equal(code, (string?)error["code"]);
            if (param is not null) Assert.Equal(param, (string?)error["param"]);
        }

        await Expect(400, "invalid_json", null, "{\"model\": \"demo\", \"prompt\": ");
        await Expect(400, null, "model", "{\"prompt\": \"x\"}");
        await Expect(404, "model_not_found", "model", "{\"model\": \"gpt-5\", \"prompt\": \"x\"}");
        await Expect(400, null, "max_tokens", "{\"model\": \"demo\", \"prompt\": \"x\", \"max_tokens\": -3}");
        await Expect(400, null, "temperature", "{\"model\": \"demo\", \"prompt\": \"x\", \"temperature\": \"hot\"}");
        await Expect(400, "unsupported_parameter", "n", "{\"model\": \"demo\", \"prompt\": \"x\", \"n\": 2}");
        await Expect(400, "unsupported_parameter", "tools", "{\"model\": \"demo\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{}]}", "v1/chat/completions");
        await Expect(400, null, "messages", "{\"model\": \"demo\", \"messages\": []}", "v1/chat/completions");
        string longPrompt = string.Concat(Enumerable.Repeat("x = 1\n", 200));
        await Expect(400, "context_length_exceeded", "prompt", System.Text.Json.JsonSerializer.Serialize(new { model = "demo", prompt = longPrompt }));
        string huge = string.Concat(Enumerable.Repeat("y", 8000));
        await Expect(413, "request_too_large", null, System.Text.Json.JsonSerializer.Serialize(new { model = "demo", prompt = huge }));
        await Expect(404, "not_found", null, "{}", "v1/embeddings");

        // The SDK sees the same errors as exceptions with the status.
        var wrongKey = new OpenAI.OpenAIClient(new ApiKeyCredential("open"), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(client.Server.BaseAddress, "v1") });
        var denied = await Assert.ThrowsAsync<ClientResultException>(() => wrongKey.GetChatClient("demo").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Cancel));
        Assert.Equal(401, denied.Status);
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => client.OpenAi.GetChatClient("nope").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Cancel));
        Assert.Equal(404, missing.Status);
        using (var noKey = new HttpClient { BaseAddress = client.Server.BaseAddress })
        {
            var response = await noKey.GetAsync("v1/models", Cancel);
            Assert.Equal(401, (int)response.StatusCode);
            Assert.Equal("invalid_api_key", (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync(Cancel))!["error"]!["code"]);
            // Health and metrics need no key (probes and scrapers).
            Assert.Equal(200, (int)(await noKey.GetAsync("health", Cancel)).StatusCode);
        }

        // Still serving, and /v1/models names the model.
        var models = JsonNode.Parse(await client.Http.GetStringAsync("v1/models", Cancel))!;
        Assert.Equal("demo", (string?)models["data"]![0]!["id"]);
        var answer = await client.CompleteAsync(new { model = "demo", prompt = "x = ", max_tokens = 4 }, Cancel);
        Assert.Equal(Greedy("x = ", 4).Text, (string)answer["choices"]![0]!["text"]!);
        string metrics = await client.Http.GetStringAsync("metrics", Cancel);
        Assert.Contains("kangaroo_http_requests_total{endpoint=\"completions\",code=\"413\"} 1", metrics);
        Assert.Contains("kangaroo_generated_tokens_total 4", metrics);
    }

    [Fact]
    public async Task AFullQueueGets429()
    {
        await using var client = await ServerClient.StartAsync(_model, new KangarooServerOptions { MaxSequences = 1, MaxQueuedRequests = 0 });
        using var hold = new CancellationTokenSource();
        var endless = client.StreamAsync("v1/completions", new { model = "demo", prompt = "x", max_tokens = 400, stream = true, ignore_eos = true }, cancellation: hold.Token);
        await ContinuousBatcherTests.WaitUntil(() => client.Server.Batcher.ActiveSequences == 1);
        using var response = await client.Http.PostAsync("v1/completions", ServerClient.JsonContent(new { model = "demo", prompt = "y", max_tokens = 2 }), Cancel);
        Assert.Equal(429, (int)response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal("rate_limit_error", (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync(Cancel))!["error"]!["type"]);
        hold.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => endless);
    }

    [Fact]
    public async Task ADisconnectMidStreamFreesItsSlot()
    {
        await using var client = await ServerClient.StartAsync(_model, new KangarooServerOptions { MaxSequences = 1 });
        var first = await client.StreamAsync("v1/completions",
            new { model = "demo", prompt = "def f(x):", max_tokens = 480, stream = true, ignore_eos = true }, stopAfter: 2, cancellation: Cancel);
        Assert.Equal(2, first.Count);
        // The dropped connection cancels the sequence; the only slot serves the next request.
        await ContinuousBatcherTests.WaitUntil(() => client.Server.Batcher.ActiveSequences == 0 && client.Server.Batcher.Statistics.RequestsFinished == 1);
        var next = await client.CompleteAsync(new { model = "demo", prompt = "x = ", max_tokens = 6 }, Cancel);
        Assert.Equal(Greedy("x = ", 6).Text, (string)next["choices"]![0]!["text"]!);
        Assert.Equal(1, client.Server.Batcher.Statistics.RequestsCancelled);
    }

    [Fact]
    public async Task AGracefulShutdownFinishesRunningStreams()
    {
        var client = await ServerClient.StartAsync(_model, new KangarooServerOptions { ShutdownTimeout = TimeSpan.FromSeconds(60) });
        var expected = Greedy("class A:\n", 40);
        var stream = client.StreamAsync("v1/completions", new { model = "demo", prompt = "class A:\n", max_tokens = 40, stream = true }, cancellation: Cancel);
        await ContinuousBatcherTests.WaitUntil(() => client.Server.Batcher.ActiveSequences == 1);
        await client.Server.StopAsync(Cancel);
        var events = await stream;
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(expected.Text, ServerClient.StreamedText(events, chat: false));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.Http.GetAsync("health", Cancel));
        await client.DisposeAsync();
    }

    [Fact]
    public async Task AShutdownPastItsTimeoutCancelsRunningStreamsWithAnError()
    {
        var client = await ServerClient.StartAsync(_model, new KangarooServerOptions { ShutdownTimeout = TimeSpan.FromMilliseconds(100) });
        var stream = client.StreamAsync("v1/completions",
            new { model = "demo", prompt = "def g(y):", max_tokens = 480, stream = true, ignore_eos = true }, cancellation: Cancel);
        await ContinuousBatcherTests.WaitUntil(() => client.Server.Batcher.ActiveSequences == 1);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await client.Server.StopAsync(Cancel);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"shutdown took {clock.Elapsed}");
        var events = await stream;
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("shutting_down", (string?)JsonNode.Parse(events[^2])!["error"]!["code"]);
        await client.DisposeAsync();
    }
}
