using System.Globalization;
using System.Runtime.InteropServices;
using Kangaroo.Server;

namespace Kangaroo.Cli;

/// <summary><c>kangaroo serve</c>: the OpenAI-compatible server (<see cref="KangarooServer"/>) over one model until Ctrl+C or SIGTERM.</summary>
internal static class ServeCommand
{
    private const string Help = """
        Usage: kangaroo serve [options]

        Serves the model over HTTP with OpenAI's API: /v1/models, /v1/completions, /v1/chat/completions
        (streaming as server-sent events), plus /health and /metrics (Prometheus). Concurrent requests share
        batched passes (continuous batching). Beyond OpenAI's fields a request may set "kangaroo": true|false,
        "top_k" and "ignore_eos".
        Ctrl+C or SIGTERM stops gracefully: running requests get --shutdown-timeout seconds to finish.

        Options:
          --model DIR          Hugging Face Llama model directory (default: the demo model installed with kangaroo)
          --model-id NAME      The model's id in the API (default: the directory's name)
          --host ADDRESS       IP address to listen on, or localhost (default 127.0.0.1: this machine only)
          --port N             TCP port (default 8080; 0 = any free port)
          --api-key KEY        Require Authorization: Bearer KEY on /v1 (default: the KANGAROO_API_KEY variable, else none)
          --max-sequences N    Sequences decoded together (default 16)
          --max-queue N        Requests that may wait for a sequence; more get 429 (default 256)
          --max-tokens N       Most new tokens a request may ask for (default: the context)
          --default-max-tokens N  New tokens of a request that does not say (default 256, or the model's max_new_tokens)
          --max-body-bytes N   Largest request body; larger gets 413 (default 1048576)
          --context N          Positions per sequence (default min(max_position_embeddings, 4096))
          --shutdown-timeout S Seconds running requests may take to finish on shutdown (default 30)

        """ + "\n" + KangarooArguments.Help + "\n" + """
          --kangaroo-off-by-default  With --kangaroo: requests decode plainly unless they set "kangaroo": true

          --backend NAME       auto (default: cuda, else ILGPU on a GPU, else cpu), cuda, ilgpu or cpu
          --threads N          CPU threads (default: all cores)
          --verbose            Stack traces with errors, and internal errors of requests on standard error
          --help               This text
        """;

    private static readonly string[] ValueOptions =
        ["model", "model-id", "host", "port", "api-key", "max-sequences", "max-queue", "max-tokens", "default-max-tokens", "max-body-bytes",
         "context", "shutdown-timeout", "backend", "threads", .. KangarooArguments.ValueOptions];
    private static readonly string[] FlagOptions = ["help", "verbose", KangarooArguments.Flag, TreeArguments.Flag, "kangaroo-off-by-default"];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var a = new Arguments(args, ValueOptions, FlagOptions);
        if (a.Flag("help"))
        {
            stdout.WriteLine(Help);
            return Cli.Success;
        }
        if (a.Positionals.Count > 0) throw new UsageException($"serve takes no arguments, got '{a.Positionals[0]}'");
        var speculation = KangarooArguments.Parse(a);
        if (speculation is null && a.Flag("kangaroo-off-by-default")) throw new UsageException("--kangaroo-off-by-default needs --kangaroo");
        double shutdownSeconds = a.Float("shutdown-timeout") ?? 30;
        if (!(shutdownSeconds >= 0)) throw new UsageException($"--shutdown-timeout must be ≥ 0 seconds, got {shutdownSeconds}");
        var options = new KangarooServerOptions
        {
            Host = a.String("host") ?? "127.0.0.1",
            Port = a.Int("port") ?? 8080,
            ApiKey = a.String("api-key") ?? NonEmpty(Environment.GetEnvironmentVariable("KANGAROO_API_KEY")),
            ModelId = a.String("model-id"),
            MaxSequences = a.Int("max-sequences") ?? 16,
            MaxQueuedRequests = a.Int("max-queue") ?? 256,
            MaxTokensLimit = a.Int("max-tokens"),
            DefaultMaxTokens = a.Int("default-max-tokens"),
            MaxRequestBodyBytes = a.Int("max-body-bytes") ?? 1 << 20,
            ContextLength = a.Int("context"),
            ShutdownTimeout = TimeSpan.FromSeconds(shutdownSeconds),
            Speculation = speculation,
            KangarooByDefault = !a.Flag("kangaroo-off-by-default"),
            Log = a.Flag("verbose") ? stderr : null,
        };
        try
        {
            options.Validate();
        }
        catch (InvalidRequestException e)
        {
            throw new UsageException(e.Message.Replace("the port", "--port").Replace("the host", "--host"));
        }

        string modelDirectory = Cli.ResolveModelDirectory(a.String("model"));
        using var backend = BackendFactory.Create(a.String("backend"), a.Int("threads"), a.Flag("verbose") ? stderr : null);
        using var model = ModelLoading.Load(modelDirectory, backend, a.Int("context"), stderr,
            loadAdapter: speculation is not null, adapterDirectory: a.String("adapter"));
        KangarooArguments.CheckLoaded(speculation, model, modelDirectory);
        return Serve(model, options, backend.Name, stdout, stderr).GetAwaiter().GetResult();
    }

    private static async Task<int> Serve(LanguageModel model, KangarooServerOptions options, string backend, TextWriter stdout, TextWriter stderr)
    {
        await using var server = await KangarooServer.StartAsync(model, options).ConfigureAwait(false);
        var c = CultureInfo.InvariantCulture;
        string kangaroo = options.Speculation is null ? "off" : options.KangarooByDefault ? "on" : "on request";
        stderr.WriteLine(string.Create(c,
            $"kangaroo serve: model {server.ModelId} on {backend}, {server.Batcher.MaxSequences} sequences of {server.Batcher.ContextLength} positions, Kangaroo {kangaroo}{(options.ApiKey is null ? "" : ", API key required")}"));
        // The address alone on standard output, so a script that started the server on port 0 can read it.
        stdout.WriteLine($"listening on {server.BaseAddress}");
        stdout.Flush();

        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
        Console.CancelKeyPress += onCancel;
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
        try
        {
            var shutdown = server.WaitForShutdownAsync();
            await Task.WhenAny(shutdown, Task.Delay(Timeout.Infinite, stop.Token)).ConfigureAwait(false);
            stderr.WriteLine("kangaroo serve: stopping (running requests may finish)");
            await server.StopAsync().ConfigureAwait(false);
            var s = server.Batcher.Statistics;
            stderr.WriteLine(string.Create(c, $"kangaroo serve: stopped after {s.RequestsFinished} requests, {s.TokensGenerated} tokens"));
            return Cli.Success;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
