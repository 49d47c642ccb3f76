using System.Security.Cryptography;
using System.Text;
using Kangaroo.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kangaroo.Server;

/// <summary>
/// An OpenAI-compatible HTTP server over one model (ASP.NET Core Kestrel): <c>/v1/models</c>, <c>/v1/completions</c>,
/// <c>/v1/chat/completions</c> (streaming as server-sent events), <c>/health</c> and <c>/metrics</c>. Every generation
/// request becomes a sequence of one <see cref="ContinuousBatcher"/>, so concurrent requests share the batched passes;
/// a client that disconnects cancels its sequence. Bad requests get OpenAI-style error JSON, and the server stays up.
/// </summary>
public sealed class KangarooServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ContinuousBatcher _batcher;
    private readonly TimeSpan _drain;
    private int _stopped;

    private KangarooServer(WebApplication app, ContinuousBatcher batcher, TimeSpan drain, string modelId)
    {
        _app = app;
        _batcher = batcher;
        _drain = drain;
        ModelId = modelId;
    }

    /// <summary>Where the server listens, e.g. <c>http://127.0.0.1:8080/</c>; OpenAI clients take <c>BaseAddress + "v1"</c>.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    public string ModelId { get; }

    /// <summary>The engine the requests share.</summary>
    public ContinuousBatcher Batcher => _batcher;

    /// <summary>Starts listening. The model is not owned: dispose it after the server.</summary>
    public static async Task<KangarooServer> StartAsync(LanguageModel model, KangarooServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        string modelId = options.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model.Directory)));
        var batcher = new ContinuousBatcher(model, new ContinuousBatchingOptions
        {
            MaxSequences = options.MaxSequences,
            MaxQueuedRequests = options.MaxQueuedRequests,
            ContextLength = options.ContextLength,
            Speculation = options.Speculation,
        });
        try
        {
            var app = Build(model, batcher, options, modelId);
            var server = new KangarooServer(app, batcher, options.ShutdownTimeout, modelId);
            app.Lifetime.ApplicationStopping.Register(() => _ = batcher.StopAsync(options.ShutdownTimeout));
            try
            {
                await app.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                await app.DisposeAsync().ConfigureAwait(false);
                throw new InvalidRequestException($"cannot listen on {options.Host}:{options.Port}: {e.Message}");
            }
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            server.BaseAddress = new Uri(address.EndsWith('/') ? address : address + "/");
            return server;
        }
        catch
        {
            await batcher.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static WebApplication Build(LanguageModel model, ContinuousBatcher batcher, KangarooServerOptions options, string modelId)
    {
        // The empty builder reads no appsettings or ASPNETCORE_* variables: what listens where is this call's options alone.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "kangaroo" });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            kestrel.Listen(options.ListenAddress, options.Port);
        });
        builder.Services.AddRoutingCore();
        // Streams still running when the drain ends are cancelled by the batcher; the host waits a little longer for them to close.
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout + TimeSpan.FromSeconds(5));
        var app = builder.Build();

        var metrics = new ServerMetrics(batcher);
        var endpoints = new OpenAiEndpoints(model, batcher, metrics, options, modelId);
        byte[]? expectedAuthorization = options.ApiKey is { } key ? Encoding.UTF8.GetBytes("Bearer " + key) : null;
        app.Use(async (context, next) =>
        {
            if (expectedAuthorization is not null && context.Request.Path.StartsWithSegments("/v1")
                && !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(context.Request.Headers.Authorization.ToString()), expectedAuthorization))
            {
                await OpenAiEndpoints.WriteError(context, new OpenAiError(StatusCodes.Status401Unauthorized, "invalid_request_error",
                    "Incorrect or missing API key: send Authorization: Bearer <key>", code: "invalid_api_key")).ConfigureAwait(false);
                metrics.Request("auth", StatusCodes.Status401Unauthorized);
                return;
            }
            await next(context).ConfigureAwait(false);
        });
        app.UseRouting();
        endpoints.Map(app);
        return app;
    }

    /// <summary>
    /// Graceful shutdown: no new connections or requests; running requests get up to the shutdown timeout to finish, then
    /// are cancelled (their streams end with an error event); the engine stops.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        await _batcher.StopAsync(_drain).ConfigureAwait(false);
    }

    /// <summary>Completes when the server has been stopped (by <see cref="StopAsync"/> or the host's lifetime).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        await _batcher.DisposeAsync().ConfigureAwait(false);
    }
}
