using System.Buffers;
using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using Kangaroo.Chat;
using Kangaroo.Generation;
using Kangaroo.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Kangaroo.Server;

/// <summary>The OpenAI-compatible endpoints over a <see cref="ContinuousBatcher"/>, plus health and metrics.</summary>
internal sealed class OpenAiEndpoints
{
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonDocumentOptions ReadOptions = new() { MaxDepth = 64 };

    private readonly LanguageModel _model;
    private readonly ContinuousBatcher _batcher;
    private readonly ServerMetrics _metrics;
    private readonly RequestDefaults _defaults;
    private readonly string _modelId;
    private readonly ModelChatTemplate? _template;
    private readonly string? _templateProblem;
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private readonly TextWriter? _log;

    public OpenAiEndpoints(LanguageModel model, ContinuousBatcher batcher, ServerMetrics metrics, KangarooServerOptions options, string modelId)
    {
        _model = model;
        _batcher = batcher;
        _metrics = metrics;
        _modelId = modelId;
        _log = options.Log;
        var generation = model.GenerationConfig;
        var sampling = generation.DefaultSampling;
        _defaults = new RequestDefaults
        {
            MaxTokens = Math.Min(options.DefaultMaxTokens ?? generation.MaxNewTokens ?? 256, options.MaxTokensLimit ?? batcher.ContextLength),
            MaxTokensLimit = options.MaxTokensLimit ?? batcher.ContextLength,
            // As `kangaroo generate`: greedy unless the model's generation_config.json samples.
            Temperature = sampling.Temperature,
            TopK = sampling.TopK,
            TopP = sampling.TopP,
            Speculation = options.Speculation,
            KangarooByDefault = options.KangarooByDefault,
        };
        try
        {
            _template = ChatTemplateConfig.TryLoad(model.Directory);
            if (_template is null)
                _templateProblem = $"the model {modelId} has no chat template (tokenizer_config.json's chat_template): use /v1/completions";
        }
        catch (KangarooException e)
        {
            _templateProblem = $"the model's chat template cannot be used: {e.Message}";
        }
    }

    public void Map(WebApplication app)
    {
        app.MapGet("/health", Health);
        app.MapGet("/metrics", Metrics);
        app.MapGet("/v1/models", Models);
        app.MapGet("/v1/models/{id}", Model);
        app.MapPost("/v1/completions", context => Generate(context, chat: false));
        app.MapPost("/v1/chat/completions", context => Generate(context, chat: true));
        app.MapFallback(context => WriteError(context, new OpenAiError(StatusCodes.Status404NotFound, "invalid_request_error",
            $"no endpoint {context.Request.Method} {context.Request.Path}: this server has /v1/models, /v1/completions, /v1/chat/completions, /health and /metrics",
            code: "not_found")));
    }

    private Task Health(HttpContext context)
    {
        bool up = !_batcher.IsStopping;
        return WriteJson(context, up ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, json =>
        {
            json.WriteStartObject();
            json.WriteString("status", up ? "ok" : "shutting_down");
            json.WriteString("model", _modelId);
            json.WriteNumber("active_sequences", _batcher.ActiveSequences);
            json.WriteNumber("queue_depth", _batcher.QueueDepth);
            json.WriteEndObject();
        });
    }

    private async Task Metrics(HttpContext context)
    {
        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await _metrics.ExportAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    private Task Models(HttpContext context) => WriteJson(context, StatusCodes.Status200OK, json =>
    {
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteStartArray("data");
        WriteModel(json);
        json.WriteEndArray();
        json.WriteEndObject();
    });

    private Task Model(HttpContext context)
    {
        string id = (string)context.Request.RouteValues["id"]!;
        return id == _modelId ? WriteJson(context, StatusCodes.Status200OK, WriteModel) : WriteError(context, OpenAiError.ModelNotFound(id));
    }

    private void WriteModel(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString("id", _modelId);
        json.WriteString("object", "model");
        json.WriteNumber("created", _created);
        json.WriteString("owned_by", "kangaroo");
        json.WriteNumber("context_length", _batcher.ContextLength);
        json.WriteBoolean("kangaroo", _batcher.Speculation is not null);
        json.WriteEndObject();
    }

    private async Task Generate(HttpContext context, bool chat)
    {
        string endpoint = chat ? "chat_completions" : "completions";
        var arrival = Stopwatch.GetTimestamp();
        try
        {
            var request = await ReadRequest(context, chat).ConfigureAwait(false);
            int[] prompt = PromptTokens(request, chat);
            BatchedGeneration generation;
            try
            {
                generation = _batcher.Submit(prompt, request.Options, context.RequestAborted);
            }
            catch (ServerBusyException e)
            {
                throw e.ShuttingDown
                    ? new OpenAiError(StatusCodes.Status503ServiceUnavailable, "server_error", e.Message, code: "shutting_down")
                    : new OpenAiError(StatusCodes.Status429TooManyRequests, "rate_limit_error", e.Message, code: "queue_full") { RetryAfter = TimeSpan.FromSeconds(1) };
            }
            catch (InvalidRequestException e)
            {
                throw OpenAiError.Invalid(e.Message, chat ? "messages" : "prompt");
            }
            var response = new ResponseWriter(request, chat, _modelId);
            if (request.Stream) await Stream(context, response, generation, request, arrival).ConfigureAwait(false);
            else await Complete(context, response, generation).ConfigureAwait(false);
            _metrics.Request(endpoint, context.Response.StatusCode);
            _metrics.Finished(Stopwatch.GetElapsedTime(arrival));
        }
        catch (OpenAiError e)
        {
            _metrics.Request(endpoint, e.Status);
            if (!context.Response.HasStarted) await WriteError(context, e).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its sequence was cancelled with it.
            _metrics.Request(endpoint, 499);
        }
        catch (IOException) when (context.RequestAborted.IsCancellationRequested)
        {
            _metrics.Request(endpoint, 499);
        }
    }

    private async Task<OpenAiRequest> ReadRequest(HttpContext context, bool chat)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(context.Request.Body, ReadOptions, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw OpenAiError.Invalid($"the request body is not valid JSON: {e.Message}", code: "invalid_json");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new OpenAiError(StatusCodes.Status413PayloadTooLarge, "invalid_request_error",
                $"the request body is larger than this server's limit of {context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes",
                code: "request_too_large");
        }
        using (document)
        {
            var request = chat ? OpenAiRequests.ReadChat(document.RootElement, _defaults) : OpenAiRequests.ReadCompletion(document.RootElement, _defaults);
            if (request.Model != _modelId) throw OpenAiError.ModelNotFound(request.Model);
            return request;
        }
    }

    private int[] PromptTokens(OpenAiRequest request, bool chat)
    {
        int[] tokens;
        string field = chat ? "messages" : "prompt";
        if (chat)
        {
            if (_template is null) throw OpenAiError.Invalid(_templateProblem!, "messages", "no_chat_template");
            string text;
            try
            {
                text = _template.Render(request.Messages!, addGenerationPrompt: true);
            }
            catch (ChatTemplateException e)
            {
                throw OpenAiError.Invalid($"the model's chat template refused the conversation: {e.Message}", "messages");
            }
            // A rendered template writes its own BOS, as transformers tokenizes it.
            tokens = _model.Tokenizer.Encode(text, addBos: false);
        }
        else
        {
            tokens = request.PromptTokens ?? _model.Tokenizer.Encode(request.PromptText!, _model.Tokenizer.AddBosToken);
        }
        if (tokens.Length == 0) throw OpenAiError.Invalid($"the {field} is empty (no tokens)", field);
        if (tokens.Length >= _batcher.ContextLength)
        {
            throw OpenAiError.Invalid($"the {field} has {tokens.Length} tokens; this model's context holds {_batcher.ContextLength}, with room for at least one new token",
                field, "context_length_exceeded");
        }
        return tokens;
    }

    private async Task Complete(HttpContext context, ResponseWriter response, BatchedGeneration generation)
    {
        var result = await Finished(generation).ConfigureAwait(false);
        if (result.StopReason == StopReason.Cancelled)
        {
            context.RequestAborted.ThrowIfCancellationRequested();
            throw ShutDown();
        }
        await WriteJson(context, StatusCodes.Status200OK, json => response.Whole(json, result)).ConfigureAwait(false);
    }

    private async Task Stream(HttpContext context, ResponseWriter response, BatchedGeneration generation, OpenAiRequest request, long arrival)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        var body = context.Response.BodyWriter;
        var cancel = context.RequestAborted;
        if (response.Chat) await Event(body, json => response.Chunk(json, role: true, piece: "", finish: null), cancel).ConfigureAwait(false);
        bool first = true;
        GenerationResult result;
        try
        {
            await foreach (string piece in generation.ReadPiecesAsync(cancel).ConfigureAwait(false))
            {
                if (first)
                {
                    _metrics.FirstToken(Stopwatch.GetElapsedTime(arrival));
                    first = false;
                }
                await Event(body, json => response.Chunk(json, role: false, piece, finish: null), cancel).ConfigureAwait(false);
            }
            result = await generation.Completion.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
        {
            await Event(body, ServerFailure(e).WriteTo, cancel).ConfigureAwait(false);
            await Done(body, cancel).ConfigureAwait(false);
            return;
        }
        if (result.StopReason == StopReason.Cancelled)
        {
            cancel.ThrowIfCancellationRequested();
            await Event(body, ShutDown().WriteTo, cancel).ConfigureAwait(false);
            await Done(body, cancel).ConfigureAwait(false);
            return;
        }
        await Event(body, json => response.Chunk(json, role: false, piece: null, finish: result), cancel).ConfigureAwait(false);
        if (request.IncludeUsage) await Event(body, json => response.UsageChunk(json, result), cancel).ConfigureAwait(false);
        await Done(body, cancel).ConfigureAwait(false);
    }

    private async Task<GenerationResult> Finished(BatchedGeneration generation)
    {
        try
        {
            return await generation.Completion.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw ServerFailure(e);
        }
    }

    private OpenAiError ServerFailure(Exception e)
    {
        if (e is KangarooException) return OpenAiError.ServerError(e.Message);
        _log?.WriteLine($"kangaroo serve: internal error: {e}");
        return OpenAiError.ServerError($"internal error: {e.GetType().Name}: {e.Message}");
    }

    private static OpenAiError ShutDown() =>
        new(StatusCodes.Status503ServiceUnavailable, "server_error", "the server is shutting down: the request was cancelled", code: "shutting_down");

    private static async Task Event(System.IO.Pipelines.PipeWriter body, Action<Utf8JsonWriter> write, CancellationToken cancel)
    {
        Write(body, "data: "u8);
        using (var json = new Utf8JsonWriter(body, JsonOptions)) write(json);
        Write(body, "\n\n"u8);
        await body.FlushAsync(cancel).ConfigureAwait(false);
    }

    private static async Task Done(System.IO.Pipelines.PipeWriter body, CancellationToken cancel)
    {
        Write(body, "data: [DONE]\n\n"u8);
        await body.FlushAsync(cancel).ConfigureAwait(false);
    }

    private static void Write(IBufferWriter<byte> body, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(body.GetSpan(bytes.Length));
        body.Advance(bytes.Length);
    }

    internal static Task WriteError(HttpContext context, OpenAiError error)
    {
        if (error.RetryAfter is { } after) context.Response.Headers.RetryAfter = ((int)Math.Ceiling(after.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteJson(context, error.Status, error.WriteTo);
    }

    private static async Task WriteJson(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer, JsonOptions)) write(json);
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }
}

/// <summary>OpenAI's response objects for one request: whole completions, stream chunks, usage.</summary>
internal sealed class ResponseWriter(OpenAiRequest request, bool chat, string modelId)
{
    private readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public bool Chat => chat;

    public void Whole(Utf8JsonWriter json, GenerationResult result)
    {
        Header(json, chat ? "chat.completion" : "text_completion");
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        if (chat)
        {
            json.WriteStartObject("message");
            json.WriteString("role", "assistant");
            json.WriteString("content", result.Text);
            json.WriteEndObject();
        }
        else
        {
            json.WriteString("text", result.Text);
        }
        json.WriteNull("logprobs");
        json.WriteString("finish_reason", FinishReason(result.StopReason));
        json.WriteEndObject();
        json.WriteEndArray();
        Usage(json, result);
        json.WriteEndObject();
    }

    /// <param name="piece">Text of the chunk; null in the last chunk, which carries <paramref name="finish"/>.</param>
    public void Chunk(Utf8JsonWriter json, bool role, string? piece, GenerationResult? finish)
    {
        Header(json, chat ? "chat.completion.chunk" : "text_completion");
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        if (chat)
        {
            json.WriteStartObject("delta");
            if (role) json.WriteString("role", "assistant");
            if (piece is not null) json.WriteString("content", piece);
            json.WriteEndObject();
        }
        else
        {
            json.WriteString("text", piece ?? "");
        }
        json.WriteNull("logprobs");
        if (finish is null) json.WriteNull("finish_reason");
        else json.WriteString("finish_reason", FinishReason(finish.StopReason));
        json.WriteEndObject();
        json.WriteEndArray();
        if (request.IncludeUsage) json.WriteNull("usage");
        json.WriteEndObject();
    }

    public void UsageChunk(Utf8JsonWriter json, GenerationResult result)
    {
        Header(json, chat ? "chat.completion.chunk" : "text_completion");
        json.WriteStartArray("choices");
        json.WriteEndArray();
        Usage(json, result);
        json.WriteEndObject();
    }

    private void Header(Utf8JsonWriter json, string type)
    {
        json.WriteStartObject();
        json.WriteString("id", _id);
        json.WriteString("object", type);
        json.WriteNumber("created", _created);
        json.WriteString("model", modelId);
    }

    private static void Usage(Utf8JsonWriter json, GenerationResult result)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", result.PromptTokenIds.Count);
        json.WriteNumber("completion_tokens", result.TokenIds.Count);
        json.WriteNumber("total_tokens", result.PromptTokenIds.Count + result.TokenIds.Count);
        if (result.Speculation is { } s)
        {
            // Not OpenAI's: the figures of Kangaroo's rounds, which OpenAI's clients ignore.
            json.WriteStartObject("kangaroo");
            json.WriteNumber("rounds", s.Rounds);
            json.WriteNumber("drafted", s.Drafted);
            json.WriteNumber("accepted", s.Accepted);
            json.WriteEndObject();
        }
        json.WriteEndObject();
    }

    private static string FinishReason(StopReason reason) =>
        reason is StopReason.MaxTokens or StopReason.ContextFull ? "length" : "stop";
}
