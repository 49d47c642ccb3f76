using System.Text.Json;
using Kangaroo.Chat;
using Kangaroo.Generation;
using Kangaroo.Speculative;

namespace Kangaroo.Server;

/// <summary>What every request falls back on: the model's sampling defaults and the server's limits and Kangaroo settings.</summary>
internal sealed record RequestDefaults
{
    public required int MaxTokens { get; init; }
    public required int MaxTokensLimit { get; init; }
    public float Temperature { get; init; }
    public int TopK { get; init; }
    public float TopP { get; init; } = 1f;

    /// <summary>The engine's Kangaroo settings; null: requests cannot ask for Kangaroo.</summary>
    public KangarooOptions? Speculation { get; init; }

    /// <summary>Whether a request that does not say uses Kangaroo.</summary>
    public bool KangarooByDefault { get; init; }
}

/// <summary>A checked completion or chat request: prompt (text, token ids or a conversation), generation options, streaming.</summary>
internal sealed record OpenAiRequest(string Model, GenerationOptions Options, bool Stream, bool IncludeUsage)
{
    public string? PromptText { get; init; }
    public int[]? PromptTokens { get; init; }
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
}

/// <summary>
/// Reads <c>/v1/completions</c> and <c>/v1/chat/completions</c> bodies. A malformed field is an <see cref="OpenAiError"/>
/// naming it; a parameter the engine does not implement (tools, logprobs, penalties, n &gt; 1, ...) is refused by name rather
/// than ignored; unknown fields are ignored, as OpenAI's clients send fields this server has no use for.
/// </summary>
internal static class OpenAiRequests
{
    private const int MaxStopStrings = 16;

    public static OpenAiRequest ReadCompletion(JsonElement body, RequestDefaults defaults)
    {
        RequireObject(body);
        RefuseUnsupported(body, chat: false);
        var (model, options, stream, includeUsage) = ReadCommon(body, defaults, "max_tokens");
        if (!body.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
            throw OpenAiError.Invalid("prompt is required", "prompt");
        var request = new OpenAiRequest(model, options, stream, includeUsage);
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                return request with { PromptText = prompt.GetString()! };
            case JsonValueKind.Array when prompt.GetArrayLength() == 0:
                throw OpenAiError.Invalid("prompt is an empty array", "prompt");
            case JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.Number:
                return request with { PromptTokens = TokenIds(prompt, "prompt") };
            case JsonValueKind.Array when prompt.GetArrayLength() > 1:
                throw OpenAiError.Unsupported("prompt", "several prompts in one request are not supported: send one request per prompt");
            case JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.String:
                return request with { PromptText = prompt[0].GetString()! };
            case JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.Array:
                return request with { PromptTokens = TokenIds(prompt[0], "prompt") };
            default:
                throw OpenAiError.Invalid("prompt must be a string, an array of one string, or an array of token ids", "prompt");
        }
    }

    public static OpenAiRequest ReadChat(JsonElement body, RequestDefaults defaults)
    {
        RequireObject(body);
        RefuseUnsupported(body, chat: true);
        string tokensField = body.TryGetProperty("max_completion_tokens", out var m) && m.ValueKind != JsonValueKind.Null ? "max_completion_tokens" : "max_tokens";
        var (model, options, stream, includeUsage) = ReadCommon(body, defaults, tokensField);
        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            throw OpenAiError.Invalid("messages is required: an array of {role, content} objects", "messages");
        if (messages.GetArrayLength() == 0) throw OpenAiError.Invalid("messages must not be empty", "messages");
        var conversation = new List<ChatMessage>();
        int index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            string field = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object) throw OpenAiError.Invalid($"{field} must be an object with role and content", field);
            string role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()!
                : throw OpenAiError.Invalid($"{field}.role is required", $"{field}.role");
            if (role is "tool" or "function")
                throw OpenAiError.Unsupported($"{field}.role", $"{field}: {role} messages are not supported (the server does not call tools)");
            if (role is not ("system" or "developer" or "user" or "assistant"))
                throw OpenAiError.Invalid($"{field}.role must be system, developer, user or assistant, got '{role}'", $"{field}.role");
            if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array && calls.GetArrayLength() > 0)
                throw OpenAiError.Unsupported($"{field}.tool_calls", $"{field}: tool calls are not supported");
            // OpenAI's developer messages are the system messages of chat templates.
            conversation.Add(new ChatMessage(role == "developer" ? "system" : role, Content(message, field)));
        }
        return new OpenAiRequest(model, options, stream, includeUsage) { Messages = conversation };
    }

    private static string Content(JsonElement message, string field)
    {
        if (!message.TryGetProperty("content", out var content)) throw OpenAiError.Invalid($"{field}.content is required", $"{field}.content");
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                return content.GetString()!;
            case JsonValueKind.Null:
                return "";
            case JsonValueKind.Array:
                var text = new System.Text.StringBuilder();
                int part = 0;
                foreach (var item in content.EnumerateArray())
                {
                    string partField = $"{field}.content[{part++}]";
                    string type = item.ValueKind == JsonValueKind.Object && item.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
                        ? t.GetString()! : throw OpenAiError.Invalid($"{partField} must be an object with a type", partField);
                    if (type != "text") throw OpenAiError.Unsupported($"{partField}.type", $"{partField}: {type} content is not supported (text only)");
                    text.Append(item.TryGetProperty("text", out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()
                        : throw OpenAiError.Invalid($"{partField}.text must be a string", $"{partField}.text"));
                }
                return text.ToString();
            default:
                throw OpenAiError.Invalid($"{field}.content must be a string or an array of text parts", $"{field}.content");
        }
    }

    private static (string Model, GenerationOptions Options, bool Stream, bool IncludeUsage) ReadCommon(JsonElement body, RequestDefaults defaults,
        string maxTokensField)
    {
        string model = body.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String && m.GetString()!.Length > 0
            ? m.GetString()! : throw OpenAiError.Invalid("model is required: a model id from /v1/models", "model");
        int maxTokens = Int(body, maxTokensField) ?? defaults.MaxTokens;
        if (maxTokens < 1) throw OpenAiError.Invalid($"{maxTokensField} must be at least 1, got {maxTokens}", maxTokensField);
        if (maxTokens > defaults.MaxTokensLimit)
            throw OpenAiError.Invalid($"{maxTokensField} is {maxTokens}; this server allows at most {defaults.MaxTokensLimit}", maxTokensField);
        float temperature = Float(body, "temperature") ?? defaults.Temperature;
        if (!(temperature >= 0)) throw OpenAiError.Invalid($"temperature must be ≥ 0, got {temperature}", "temperature");
        float topP = Float(body, "top_p") ?? defaults.TopP;
        if (!(topP > 0 && topP <= 1)) throw OpenAiError.Invalid($"top_p must be in (0, 1], got {topP}", "top_p");
        int topK = Int(body, "top_k") ?? defaults.TopK;
        if (topK < 0) throw OpenAiError.Invalid($"top_k must be ≥ 0 (0 = off), got {topK}", "top_k");
        long? seed = Long(body, "seed");
        if (seed is < 0) throw OpenAiError.Invalid($"seed must be ≥ 0, got {seed}", "seed");
        bool stream = Bool(body, "stream") ?? false;
        bool includeUsage = false;
        if (body.TryGetProperty("stream_options", out var streamOptions) && streamOptions.ValueKind != JsonValueKind.Null)
        {
            if (streamOptions.ValueKind != JsonValueKind.Object) throw OpenAiError.Invalid("stream_options must be an object", "stream_options");
            if (!stream) throw OpenAiError.Invalid("stream_options is only allowed with stream: true", "stream_options");
            includeUsage = Bool(streamOptions, "include_usage", "stream_options.include_usage") ?? false;
        }
        // vLLM's extension: benchmarks ask for exactly max_tokens tokens.
        bool ignoreEos = Bool(body, "ignore_eos") ?? false;
        bool kangaroo = Bool(body, "kangaroo") ?? (defaults.KangarooByDefault && defaults.Speculation is not null);
        if (kangaroo && defaults.Speculation is null)
            throw OpenAiError.Unsupported("kangaroo", "Kangaroo decoding is not enabled on this server (start it with --kangaroo and an adapter)");
        var options = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            Temperature = temperature,
            TopK = topK,
            TopP = topP,
            Seed = seed is long s ? (ulong)s : null,
            StopStrings = StopStrings(body),
            StopAtEndOfSequence = !ignoreEos,
            Speculation = kangaroo ? defaults.Speculation : null,
        };
        return (model, options, stream, includeUsage);
    }

    /// <summary>Parameters of OpenAI's API the engine does not implement: refused by name when set to anything but their neutral value.</summary>
    private static void RefuseUnsupported(JsonElement body, bool chat)
    {
        foreach (var property in body.EnumerateObject())
        {
            var v = property.Value;
            if (v.ValueKind == JsonValueKind.Null) continue;
            string? problem = property.Name switch
            {
                "n" when !(v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n == 1) => "only n = 1 is supported: send one request per completion",
                "best_of" when !(v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int b) && b == 1) => "best_of is not supported",
                "logprobs" when !(v.ValueKind == JsonValueKind.False || (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int l) && l == 0)) => "log probabilities are not supported",
                "top_logprobs" when !(v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int t) && t == 0) => "log probabilities are not supported",
                "echo" when v.ValueKind != JsonValueKind.False => "echo is not supported",
                "suffix" when !(v.ValueKind == JsonValueKind.String && v.GetString()!.Length == 0) => "suffix (insertion) is not supported",
                "presence_penalty" or "frequency_penalty" when !(v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0) => $"{property.Name} is not supported",
                "logit_bias" when !(v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any()) => "logit_bias is not supported",
                "tools" or "functions" when !(v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0) => "tools are not supported: the server does not call tools",
                "tool_choice" or "function_call" when !(v.ValueKind == JsonValueKind.String && v.GetString() == "none") => "tools are not supported: the server does not call tools",
                "response_format" when !(v.ValueKind == JsonValueKind.Object && v.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text")
                    => "only the text response format is supported: the output is not constrained",
                "modalities" when chat && !(v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String && x.GetString() == "text"))
                    => "only text output is supported",
                "audio" or "prediction" or "web_search_options" => $"{property.Name} is not supported",
                _ => null,
            };
            if (problem is not null) throw OpenAiError.Unsupported(property.Name, problem);
        }
    }

    private static IReadOnlyList<string> StopStrings(JsonElement body)
    {
        if (!body.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null) return [];
        if (stop.ValueKind == JsonValueKind.String) return NonEmpty([stop.GetString()!]);
        if (stop.ValueKind != JsonValueKind.Array || stop.EnumerateArray().Any(s => s.ValueKind != JsonValueKind.String))
            throw OpenAiError.Invalid("stop must be a string or an array of strings", "stop");
        if (stop.GetArrayLength() > MaxStopStrings) throw OpenAiError.Invalid($"stop holds {stop.GetArrayLength()} strings; at most {MaxStopStrings}", "stop");
        return NonEmpty(stop.EnumerateArray().Select(s => s.GetString()!).ToArray());

        static string[] NonEmpty(string[] stops) => stops.Any(s => s.Length == 0) ? throw OpenAiError.Invalid("stop strings must not be empty", "stop") : stops;
    }

    private static int[] TokenIds(JsonElement array, string field)
    {
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out ids[i]))
                throw OpenAiError.Invalid($"{field} token ids must be integers (item {i})", field);
            i++;
        }
        return ids;
    }

    private static void RequireObject(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object) throw OpenAiError.Invalid("the request body must be a JSON object");
    }

    private static int? Int(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d))
            return d > int.MaxValue ? int.MaxValue : d < int.MinValue ? int.MinValue : (int)d;
        throw OpenAiError.Invalid($"{name} must be an integer, got {v.GetRawText()}", name);
    }

    private static long? Long(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long l)) return l;
        throw OpenAiError.Invalid($"{name} must be an integer, got {v.GetRawText()}", name);
    }

    private static float? Float(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d)) return (float)d;
        throw OpenAiError.Invalid($"{name} must be a number, got {v.GetRawText()}", name);
    }

    private static bool? Bool(JsonElement body, string name, string? field = null)
    {
        if (!body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw OpenAiError.Invalid($"{field ?? name} must be true or false, got {v.GetRawText()}", field ?? name),
        };
    }
}
