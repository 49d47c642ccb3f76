using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kangaroo.Server;
using OpenAI;
using OpenAI.Chat;
using Xunit;

namespace Kangaroo.Tests.Serving;

/// <summary>
/// A running <see cref="KangarooServer"/> on a free loopback port with clients for it: the official OpenAI SDK's chat
/// client, the SDK's own pipeline for <c>/v1/completions</c> (its legacy completions client is not public), and plain HTTP.
/// </summary>
public sealed class ServerClient : IAsyncDisposable
{
    private ServerClient(KangarooServer server, string? apiKey)
    {
        Server = server;
        var options = new OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "v1"), NetworkTimeout = TimeSpan.FromMinutes(5) };
        OpenAi = new OpenAIClient(new ApiKeyCredential(apiKey ?? "unused"), options);
        Chat = OpenAi.GetChatClient(server.ModelId);
        // No draining of an unread response: a stream dropped by the test closes its connection at once, as a client that goes away does.
        Http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };
        if (apiKey is not null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public KangarooServer Server { get; }
    public OpenAIClient OpenAi { get; }
    public ChatClient Chat { get; }
    public HttpClient Http { get; }

    public static async Task<ServerClient> StartAsync(LanguageModel model, KangarooServerOptions? options = null)
    {
        options = (options ?? new KangarooServerOptions()) with { Port = 0, ModelId = options?.ModelId ?? "demo" };
        var server = await KangarooServer.StartAsync(model, options);
        return new ServerClient(server, options.ApiKey);
    }

    /// <summary>POSTs <paramref name="body"/> to /v1/completions through the OpenAI SDK's pipeline (authentication, retries, errors as the SDK has them).</summary>
    public async Task<JsonObject> CompleteAsync(object body, CancellationToken cancellation = default)
    {
        using var message = OpenAi.Pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(Server.BaseAddress, "v1/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromObjectAsJson(body));
        message.ResponseClassifier = PipelineMessageClassifier.Create([200]);
        message.Apply(new RequestOptions { CancellationToken = cancellation });
        await OpenAi.Pipeline.SendAsync(message);
        if (message.Response!.IsError) throw new ClientResultException(message.Response);
        return JsonNode.Parse(message.Response.Content.ToString())!.AsObject();
    }

    /// <summary>POSTs a JSON text and returns the status and the body as JSON (null when the body is not JSON).</summary>
    public async Task<(int Status, JsonNode? Body)> PostRawAsync(string path, string body, CancellationToken cancellation = default)
    {
        using var response = await Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), cancellation);
        string text = await response.Content.ReadAsStringAsync(cancellation);
        JsonNode? json;
        try
        {
            json = JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            json = null;
        }
        return ((int)response.StatusCode, json);
    }

    /// <summary>
    /// Streams a request and returns its server-sent events' data in order (the final "[DONE]" included). With
    /// <paramref name="stopAfter"/>, the connection is dropped after that many events.
    /// </summary>
    public async Task<List<string>> StreamAsync(string path, object body, int? stopAfter = null, CancellationToken cancellation = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent(body) };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellation);
        if (!response.IsSuccessStatusCode) throw new HttpRequestException($"status {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellation)}");
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellation));
        while (await reader.ReadLineAsync(cancellation) is { } line)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            events.Add(line["data: ".Length..]);
            if (stopAfter is int n && events.Count >= n) break;
        }
        return events;
    }

    /// <summary>The text of a completion or chat stream's chunks.</summary>
    public static string StreamedText(IEnumerable<string> events, bool chat) => string.Concat(events.Where(e => e != "[DONE]")
        .Select(e => JsonNode.Parse(e)!["choices"]!.AsArray())
        .Where(choices => choices.Count > 0)
        .Select(choices => chat ? (string?)choices[0]!["delta"]!["content"] ?? "" : (string)choices[0]!["text"]!));

    public static StringContent JsonContent(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}
