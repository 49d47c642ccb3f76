using Kangaroo.Backends.Cpu;
using Kangaroo.Extensions.AI;
using Kangaroo.Generation;
using Microsoft.Extensions.AI;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Chat;

/// <summary>The engine behind Microsoft.Extensions.AI's chat abstraction: the same tokens as the library's own generation.</summary>
public sealed class ChatClientTests : IDisposable
{
    private readonly LanguageModel _model = LanguageModel.Load(TestModels.DemoDirectory,
        new ModelLoadOptions { Backend = new CpuBackend() });

    public void Dispose() => _model.Dispose();

    /// <summary>A plain prompt format for a model without a template: the user's words, then the start of a function.</summary>
    private static string Format(IReadOnlyList<ChatMessage> messages) => string.Concat(messages.Select(m => m.Text)) + "\ndef ";

    private static readonly ChatMessage[] Conversation = [new(ChatRole.System, "# helpers"), new(ChatRole.User, "\nimport os")];
    private static string Prompt => Format(Conversation);
    private CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ResponsesAndStreamsAreTheLibrarysGreedyOutput()
    {
        using IChatClient client = new KangarooChatClient(_model, Format);
        var options = new ChatOptions { MaxOutputTokens = 24 };
        var expected = _model.Generate(Prompt, new GenerationOptions { MaxNewTokens = 24, AddBos = false });

        var response = await client.GetResponseAsync(Conversation, options, Cancel);
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages.Single().Role);
        Assert.Equal(expected.PromptTokenIds.Count, response.Usage!.InputTokenCount);
        Assert.Equal(expected.TokenIds.Count, response.Usage.OutputTokenCount);
        Assert.Equal(expected.StopReason is StopReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation, options, Cancel)) updates.Add(update);
        Assert.Equal(expected.Text, string.Concat(updates.Select(u => u.Text)));
        var usage = updates.SelectMany(u => u.Contents).OfType<UsageContent>().Single();
        Assert.Equal(expected.TokenIds.Count, usage.Details.OutputTokenCount);
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
    }

    [Fact]
    public async Task OptionsMapOntoGenerationAndKangarooIsChosenPerRequest()
    {
        using IChatClient client = new KangarooChatClient(_model, Format);
        var sampled = new ChatOptions { MaxOutputTokens = 20, Temperature = 0.8f, TopP = 0.9f, TopK = 20, Seed = 7, StopSequences = ["\n\n"] };
        var expected = _model.Generate(Prompt, new GenerationOptions
        {
            MaxNewTokens = 20, Temperature = 0.8f, TopP = 0.9f, TopK = 20, Seed = 7, StopStrings = ["\n\n"], AddBos = false,
        });
        Assert.Equal(expected.Text, (await client.GetResponseAsync(Conversation, sampled, Cancel)).Text);

        var greedy = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 30 }, Cancel);
        var kangaroo = await client.GetResponseAsync(Conversation, new ChatOptions
        {
            MaxOutputTokens = 30,
            AdditionalProperties = new() { [KangarooChatClient.KangarooProperty] = true, [KangarooChatClient.DraftStepsProperty] = 4 },
        }, Cancel);
        Assert.Equal(greedy.Text, kangaroo.Text);
        Assert.Null(greedy.Usage!.AdditionalCounts);
        Assert.True(kangaroo.Usage!.AdditionalCounts!["kangaroo_rounds"] > 0);

        var tree = await client.GetResponseAsync(Conversation, new ChatOptions
        {
            MaxOutputTokens = 30,
            AdditionalProperties = new() { [KangarooChatClient.KangarooProperty] = "true", [KangarooChatClient.TreeProperty] = true },
        }, Cancel);
        Assert.Equal(greedy.Text, tree.Text);
    }

    [Fact]
    public async Task BadOptionsAreRefusedByNameAndCancellationStops()
    {
        using IChatClient client = new KangarooChatClient(_model, Format);
        async Task<string> Refusal(ChatOptions options) =>
            (await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync(Conversation, options, Cancel))).Message;
        Assert.Contains("temperature", await Refusal(new ChatOptions { Temperature = -1 }));
        Assert.Contains("max new tokens", await Refusal(new ChatOptions { MaxOutputTokens = 0 }));
        Assert.Contains("seed", await Refusal(new ChatOptions { Seed = -3 }));
        Assert.Contains("JSON response format", await Refusal(new ChatOptions { ResponseFormat = ChatResponseFormat.Json }));
        Assert.Contains("kangaroo_threshold", await Refusal(new ChatOptions
        {
            AdditionalProperties = new() { [KangarooChatClient.KangarooProperty] = true, [KangarooChatClient.ThresholdProperty] = "high" },
        }));
        Assert.Contains("no messages", (await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync([], null, Cancel))).Message);

        using IChatClient untemplated = new KangarooChatClient(_model, formatPrompt: null);
        var e = await Assert.ThrowsAsync<InvalidRequestException>(() => untemplated.GetResponseAsync(Conversation, null, Cancel));
        Assert.Contains("no chat template", e.Message);

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync(Conversation, null, cancelled.Token));
    }

    [Fact]
    public async Task WorksInsideAChatClientBuilderPipeline()
    {
        using var inner = new KangarooChatClient(_model, Format);
        using IChatClient client = new ChatClientBuilder(inner).UseFunctionInvocation().Build();
        var options = new ChatOptions { MaxOutputTokens = 16, Tools = [AIFunctionFactory.Create(() => 42, "answer")] };
        var response = await client.GetResponseAsync(Conversation, options, Cancel);
        Assert.Equal(_model.Generate(Prompt, new GenerationOptions { MaxNewTokens = 16, AddBos = false }).Text, response.Text);
        Assert.Same(_model, client.GetService<LanguageModel>());
        Assert.Equal("kangaroo", client.GetService<ChatClientMetadata>()!.ProviderName);
    }
}

/// <summary>The chat client with a model directory's own chat template.</summary>
public sealed class TemplatedChatClientTests
{
    [Fact]
    public async Task AModelsTemplateFormatsTheConversationAndItsAbsenceIsAClearError()
    {
        using var dir = new TestDirectory("chat-template");
        string demo = TestModels.DemoDirectory;
        foreach (string file in Directory.EnumerateFiles(demo)) File.Copy(file, dir.Combine(Path.GetFileName(file)));
        using (var plain = LanguageModel.Load(dir.Path, new ModelLoadOptions { Backend = new CpuBackend() }))
        {
            using var client = new KangarooChatClient(plain);
            var e = await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]));
            Assert.Contains("no chat template", e.Message);
        }

        // A Vicuna-style template written into the copy's tokenizer_config.json.
        string configPath = dir.Combine("tokenizer_config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["chat_template"] = "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";
        File.WriteAllText(configPath, config.ToJsonString());
        using var model = LanguageModel.Load(dir.Path, new ModelLoadOptions { Backend = new CpuBackend() });
        using var templated = new KangarooChatClient(model);
        var response = await templated.GetResponseAsync([new ChatMessage(ChatRole.System, "def"), new ChatMessage(ChatRole.User, "fib")],
            new ChatOptions { MaxOutputTokens = 12 });
        var expected = model.Generate("SYSTEM: def\nUSER: fib\nASSISTANT:", new Kangaroo.Generation.GenerationOptions { MaxNewTokens = 12, AddBos = false });
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(expected.PromptTokenIds.Count, response.Usage!.InputTokenCount);
    }
}

/// <summary>The chat client over a continuous batcher: concurrent calls share rounds and each gets its own greedy text.</summary>
public sealed class BatchedChatClientTests : IDisposable
{
    private readonly LanguageModel _model = LanguageModel.Load(TestModels.DemoDirectory, new ModelLoadOptions { Backend = new CpuBackend(), ContextLength = 256 });

    public void Dispose() => _model.Dispose();

    private static string Format(IReadOnlyList<ChatMessage> messages) => string.Concat(messages.Select(m => m.Text)) + "\ndef ";

    [Fact]
    public async Task ConcurrentCallsThroughABatcherAreEachTheLibrarysGreedyOutput()
    {
        await using var batcher = new Kangaroo.Serving.ContinuousBatcher(_model,
            new Kangaroo.Serving.ContinuousBatchingOptions { MaxSequences = 4, Speculation = new Kangaroo.Speculative.KangarooOptions() });
        using IChatClient client = new KangarooChatClient(batcher, Format);
        string[] users = ["import os", "# sort", "class A:", "x = 1", "from math import", "def g():"];
        var calls = users.Select(async (user, i) =>
        {
            var options = new ChatOptions { MaxOutputTokens = 16, AdditionalProperties = new() { [KangarooChatClient.KangarooProperty] = i % 2 == 0 } };
            ChatMessage[] conversation = [new(ChatRole.User, user)];
            if (i % 3 == 0)
            {
                var text = new System.Text.StringBuilder();
                await foreach (var update in client.GetStreamingResponseAsync(conversation, options, TestContext.Current.CancellationToken)) text.Append(update.Text);
                return text.ToString();
            }
            return (await client.GetResponseAsync(conversation, options, TestContext.Current.CancellationToken)).Text;
        }).ToArray();
        string[] texts = await Task.WhenAll(calls);
        for (int i = 0; i < users.Length; i++)
            Assert.Equal(_model.Generate(users[i] + "\ndef ", new GenerationOptions { MaxNewTokens = 16, AddBos = false }).Text, texts[i]);
        Assert.Same(batcher, client.GetService<Kangaroo.Serving.ContinuousBatcher>());
        Assert.True(batcher.Statistics.Drafted > 0);

        // Draft settings other than the batcher's are refused by name.
        var other = new ChatOptions { AdditionalProperties = new() { [KangarooChatClient.KangarooProperty] = true, [KangarooChatClient.DraftStepsProperty] = 2 } };
        var e = await Assert.ThrowsAsync<InvalidRequestException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "x")], other));
        Assert.Contains("drafts with", e.Message);
    }
}
