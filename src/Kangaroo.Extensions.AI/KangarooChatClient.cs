using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Kangaroo.Generation;
using Kangaroo.Speculative;
using Microsoft.Extensions.AI;

namespace Kangaroo.Extensions.AI;

/// <summary>
/// A <see cref="LanguageModel"/> as Microsoft.Extensions.AI's <see cref="IChatClient"/>. The conversation becomes one
/// prompt through <c>formatPrompt</c> (a model's chat template); <see cref="ChatOptions"/> map onto
/// <see cref="GenerationOptions"/>: max output tokens, temperature, top-p, top-k, seed and stop sequences. Kangaroo is
/// chosen per request through <see cref="ChatOptions.AdditionalProperties"/> (<see cref="KangarooProperty"/> = true,
/// with <see cref="DraftStepsProperty"/>, <see cref="ThresholdProperty"/>, <see cref="TreeProperty"/>), and the usage
/// details carry its figures. Tools are not called: the model answers in text only. The model is not owned.
/// </summary>
public sealed class KangarooChatClient : IChatClient
{
    public const string KangarooProperty = "kangaroo";
    public const string DraftStepsProperty = "kangaroo_draft_steps";
    public const string ThresholdProperty = "kangaroo_threshold";
    public const string TreeProperty = "kangaroo_tree";

    private readonly LanguageModel _model;
    private readonly Serving.ContinuousBatcher? _batcher;
    private readonly Func<IReadOnlyList<ChatMessage>, string>? _formatPrompt;
    private readonly ChatClientMetadata _metadata;

    /// <summary>
    /// The chat client of a model with the chat template of its tokenizer_config.json (<see cref="Chat.ChatTemplateConfig"/>),
    /// rendered with the generation prompt for the assistant's turn. A model without a template still makes a client: its
    /// chat calls say there is no template (the completion API still works).
    /// </summary>
    public KangarooChatClient(LanguageModel model, string? modelId = null)
        : this(model, TemplateFormatter(model ?? throw new ArgumentNullException(nameof(model))), modelId)
    {
    }

    private static Func<IReadOnlyList<ChatMessage>, string>? TemplateFormatter(LanguageModel model)
    {
        var template = Chat.ChatTemplateConfig.TryLoad(model.Directory);
        if (template is null) return null;
        return messages => template.Render(messages.Select(m => new Chat.ChatMessage(m.Role.Value, m.Text)).ToList(), addGenerationPrompt: true);
    }

    /// <param name="formatPrompt">Turns the conversation into the prompt text (with the generation prompt for the assistant's turn); the
    /// text is tokenized without an added BOS, as transformers tokenizes a rendered chat template (templates write their own).</param>
    /// <param name="modelId">The id reported in the metadata and responses; default: the model directory's name.</param>
    public KangarooChatClient(LanguageModel model, Func<IReadOnlyList<ChatMessage>, string>? formatPrompt, string? modelId = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _formatPrompt = formatPrompt;
        ModelId = modelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Directory));
        _metadata = new ChatClientMetadata("kangaroo", defaultModelId: ModelId);
    }

    /// <summary>
    /// The chat client of a <see cref="Serving.ContinuousBatcher"/>'s model with its chat template: concurrent calls share the
    /// batcher's rounds, as the requests of <c>kangaroo serve</c> do. Kangaroo (<see cref="KangarooProperty"/>) means the
    /// batcher's own settings; other draft settings are refused. The batcher is not owned.
    /// </summary>
    public KangarooChatClient(Serving.ContinuousBatcher batcher, string? modelId = null)
        : this(batcher ?? throw new ArgumentNullException(nameof(batcher)), TemplateFormatter(batcher.Model), modelId)
    {
    }

    /// <summary>The batcher's chat client with a prompt format of its own (see the other constructors).</summary>
    public KangarooChatClient(Serving.ContinuousBatcher batcher, Func<IReadOnlyList<ChatMessage>, string>? formatPrompt, string? modelId = null)
        : this(batcher?.Model ?? throw new ArgumentNullException(nameof(batcher)), formatPrompt, modelId)
    {
        _batcher = batcher;
    }

    public string ModelId { get; }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var (prompt, generation) = Prepare(messages, options);
        var result = _batcher is null
            ? await Task.Run(() => _model.Generate(prompt, generation, cancellationToken), cancellationToken).ConfigureAwait(false)
            : await _batcher.Submit(prompt, generation, cancellationToken).Completion.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, result.Text))
        {
            ModelId = ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = FinishReasonOf(result.StopReason),
            Usage = UsageOf(result),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (prompt, generation) = Prepare(messages, options);
        string responseId = Guid.NewGuid().ToString("N");
        GenerationResult result;
        if (_batcher is null)
        {
            var stream = _model.GenerateStreaming(prompt, generation);
            await foreach (string piece in stream.WithCancellation(cancellationToken).ConfigureAwait(false))
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ModelId = ModelId, ResponseId = responseId };
            result = stream.Result;
        }
        else
        {
            var request = _batcher.Submit(prompt, generation, cancellationToken);
            await foreach (string piece in request.ReadPiecesAsync(cancellationToken).ConfigureAwait(false))
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ModelId = ModelId, ResponseId = responseId };
            result = await request.Completion.ConfigureAwait(false);
        }
        cancellationToken.ThrowIfCancellationRequested();
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(UsageOf(result))])
        {
            ModelId = ModelId,
            ResponseId = responseId,
            FinishReason = FinishReasonOf(result.StopReason),
        };
    }

    /// <summary>The metadata, the <see cref="LanguageModel"/>, the batcher (if any), or this client, by the type asked for.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType.IsInstanceOfType(_model)) return _model;
        if (_batcher is not null && serviceType.IsInstanceOfType(_batcher)) return _batcher;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose() { }

    private (string Prompt, GenerationOptions Options) Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = messages.ToList();
        if (conversation.Count == 0) throw new InvalidRequestException("the conversation has no messages");
        if (options?.ResponseFormat is ChatResponseFormatJson)
            throw new InvalidRequestException("a JSON response format is not supported: the model's output is not constrained");
        var formatPrompt = _formatPrompt ?? throw new InvalidRequestException(
            $"{_model.Directory} has no chat template to turn a conversation into a prompt: give the chat client one, or use the completion API (LanguageModel.Generate)");
        return (formatPrompt(conversation), GenerationOptionsOf(options));
    }

    /// <summary>ChatOptions as generation options; an invalid value is refused by name.</summary>
    private GenerationOptions GenerationOptionsOf(ChatOptions? options)
    {
        var generation = new GenerationOptions { AddBos = false };
        if (options is null) return generation;
        if (options.Seed is < 0) throw new InvalidRequestException($"seed must be ≥ 0, got {options.Seed}");
        generation = generation with
        {
            MaxNewTokens = options.MaxOutputTokens ?? generation.MaxNewTokens,
            Temperature = options.Temperature ?? generation.Temperature,
            TopP = options.TopP ?? generation.TopP,
            TopK = options.TopK ?? generation.TopK,
            Seed = options.Seed is long seed ? (ulong)seed : null,
            StopStrings = options.StopSequences?.ToArray() ?? [],
            Speculation = SpeculationOf(options.AdditionalProperties),
        };
        generation.Validate();
        return generation;
    }

    private KangarooOptions? SpeculationOf(AdditionalPropertiesDictionary? properties)
    {
        if (properties is null || !properties.TryGetValue(KangarooProperty, out object? on) || !Bool(on, KangarooProperty)) return null;
        // A batcher drafts with its own settings; a request that names others is refused by the batcher.
        var speculation = _batcher?.Speculation ?? new KangarooOptions();
        if (properties.TryGetValue(DraftStepsProperty, out object? steps)) speculation = speculation with { MaxDraftSteps = (int)Number(steps, DraftStepsProperty) };
        if (properties.TryGetValue(ThresholdProperty, out object? threshold)) speculation = speculation with { Threshold = (float)Number(threshold, ThresholdProperty) };
        if (properties.TryGetValue(TreeProperty, out object? tree) && Bool(tree, TreeProperty)) speculation = speculation with { Tree = new TokenTreeOptions() };
        speculation.Validate(_model.Config.NumLayers);
        return speculation;
    }

    private static bool Bool(object? value, string name) => value switch
    {
        bool b => b,
        JsonElement { ValueKind: JsonValueKind.True } => true,
        JsonElement { ValueKind: JsonValueKind.False } => false,
        string s when bool.TryParse(s, out bool b) => b,
        _ => throw new InvalidRequestException($"{name} must be true or false, got {value ?? "null"}"),
    };

    private static double Number(object? value, string name) => value switch
    {
        int or long or float or double or decimal => Convert.ToDouble(value, CultureInfo.InvariantCulture),
        JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => throw new InvalidRequestException($"{name} must be a number, got {value ?? "null"}"),
    };

    private static ChatFinishReason FinishReasonOf(StopReason reason) =>
        reason is StopReason.MaxTokens or StopReason.ContextFull ? ChatFinishReason.Length : ChatFinishReason.Stop;

    private static UsageDetails UsageOf(GenerationResult result)
    {
        var usage = new UsageDetails
        {
            InputTokenCount = result.PromptTokenIds.Count,
            OutputTokenCount = result.TokenIds.Count,
            TotalTokenCount = result.PromptTokenIds.Count + result.TokenIds.Count,
        };
        if (result.Speculation is { } s)
        {
            usage.AdditionalCounts = new AdditionalPropertiesDictionary<long>
            {
                ["kangaroo_rounds"] = s.Rounds,
                ["kangaroo_drafted"] = s.Drafted,
                ["kangaroo_accepted"] = s.Accepted,
            };
        }
        return usage;
    }
}
