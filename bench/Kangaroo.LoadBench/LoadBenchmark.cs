using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kangaroo.LoadBench;

/// <summary>What to send and how hard: the server, the concurrencies, the modes and each request's shape.</summary>
public sealed record LoadOptions
{
    public const string Help = """
        Usage: kangaroo-loadbench --url URL [options]

        A bounded loopback load client for kangaroo serve: at each concurrency C, C clients each stream
        /v1/completions requests back to back (greedy, ignore_eos, exactly --max-tokens tokens) until --requests
        have ended; reports throughput and p50/p99 time to first token and inter-token latency per mode.

        Options:
          --url URL            The server (default http://127.0.0.1:8080/)
          --model-id NAME      Model id to request (default: the first of /v1/models)
          --api-key KEY        Bearer key (default: the KANGAROO_API_KEY variable)
          --concurrency LIST   Comma-separated client counts (default 1,8,32)
          --requests N         Requests per concurrency and mode (default max(8, 2 × C))
          --max-tokens N       Tokens per request (default 64)
          --modes LIST         vanilla, kangaroo or both (default vanilla,kangaroo)
          --prompts FILE       JSON lines with a "prompt" field (default bench/data/prompts.jsonl, else a built-in prompt)
          --max-prompt-chars N Prompts cut to N characters (default 1000)
          --warmup N           Requests per mode sent (and not measured) before the first measurement (default 8)
          --json FILE          Results as JSON
          --markdown FILE      Results as a Markdown table
        """;

    public Uri Url { get; init; } = new("http://127.0.0.1:8080/");
    public string? ModelId { get; init; }
    public string? ApiKey { get; init; }
    public IReadOnlyList<int> Concurrency { get; init; } = [1, 8, 32];
    public int? Requests { get; init; }
    public int MaxTokens { get; init; } = 64;
    public IReadOnlyList<string> Modes { get; init; } = ["vanilla", "kangaroo"];
    public IReadOnlyList<string> Prompts { get; init; } = [];
    public int Warmup { get; init; } = 8;
    public string? JsonPath { get; init; }
    public string? MarkdownPath { get; init; }

    public int RequestsAt(int concurrency) => Requests ?? Math.Max(8, 2 * concurrency);

    /// <summary>The options of a command line; null when it asks for help.</summary>
    public static LoadOptions? Parse(string[] args)
    {
        var options = new LoadOptions { ApiKey = Environment.GetEnvironmentVariable("KANGAROO_API_KEY") is { Length: > 0 } key ? key : null };
        string? promptsFile = null;
        int maxChars = 1000;
        for (int i = 0; i < args.Length; i++)
        {
            string option = args[i];
            if (option is "--help" or "-h") return null;
            string Value() => i + 1 < args.Length ? args[++i] : throw new LoadUsageException($"{option} needs a value");
            options = option switch
            {
                "--url" => options with { Url = Uri.TryCreate(Value(), UriKind.Absolute, out var url) ? new Uri(url.ToString().TrimEnd('/') + "/") : throw new LoadUsageException("--url must be an absolute URL") },
                "--model-id" => options with { ModelId = Value() },
                "--api-key" => options with { ApiKey = Value() },
                "--concurrency" => options with { Concurrency = Value().Split(',').Select(c => Kangaroo.LoadBench.Parse.Int(option, c)).ToArray() },
                "--requests" => options with { Requests = Kangaroo.LoadBench.Parse.Int(option, Value()) },
                "--max-tokens" => options with { MaxTokens = Kangaroo.LoadBench.Parse.Int(option, Value()) },
                "--modes" => options with { Modes = ParseModes(Value()) },
                "--warmup" => options with { Warmup = int.TryParse(Value(), CultureInfo.InvariantCulture, out int w) && w >= 0 ? w : throw new LoadUsageException("--warmup must be ≥ 0") },
                "--json" => options with { JsonPath = Value() },
                "--markdown" => options with { MarkdownPath = Value() },
                "--prompts" => Set(ref promptsFile, Value(), options),
                "--max-prompt-chars" => Set(ref maxChars, Kangaroo.LoadBench.Parse.Int(option, Value()), options),
                _ => throw new LoadUsageException($"unknown option '{option}' (see --help)"),
            };
        }
        promptsFile ??= File.Exists("bench/data/prompts.jsonl") ? "bench/data/prompts.jsonl" : null;
        var prompts = promptsFile is null ? ["def fibonacci(n):"] : ReadPrompts(promptsFile);
        return options with { Prompts = prompts.Select(p => p.Length > maxChars ? p[..maxChars] : p).ToArray() };
    }

    private static LoadOptions Set<T>(ref T field, T value, LoadOptions options)
    {
        field = value;
        return options;
    }

    private static string[] ParseModes(string list)
    {
        var modes = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (string mode in modes)
        {
            if (mode is not ("vanilla" or "kangaroo")) throw new LoadUsageException($"--modes takes vanilla and kangaroo, got '{mode}'");
        }
        return modes.Length > 0 ? modes : throw new LoadUsageException("--modes is empty");
    }

    private static string[] ReadPrompts(string path)
    {
        if (!File.Exists(path)) throw new LoadUsageException($"{path}: prompts file not found");
        var prompts = File.ReadLines(path).Where(l => l.Length > 0)
            .Select(l => (string?)JsonNode.Parse(l)?["prompt"] ?? throw new LoadUsageException($"{path}: a line without a \"prompt\" string"))
            .ToArray();
        return prompts.Length > 0 ? prompts : throw new LoadUsageException($"{path}: no prompts");
    }
}

/// <summary>The figures of one mode at one concurrency.</summary>
public sealed record LoadResult(string Mode, int Concurrency, int Requests, int Errors, long OutputTokens, double WallSeconds,
    double TimeToFirstTokenP50, double TimeToFirstTokenP99, double InterTokenP50, double InterTokenP99, double TimePerOutputTokenMean)
{
    public double TokensPerSecond => OutputTokens / WallSeconds;
}

/// <summary>The closed-loop client.</summary>
public static class LoadBenchmark
{
    public static async Task<IReadOnlyList<LoadResult>> RunAsync(LoadOptions options, TextWriter? log = null, CancellationToken cancellation = default)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1024, PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
        {
            BaseAddress = options.Url,
            Timeout = TimeSpan.FromMinutes(10),
        };
        if (options.ApiKey is { } key) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        string model = options.ModelId ?? await FirstModel(http, cancellation).ConfigureAwait(false);
        var results = new List<LoadResult>();
        // Every mode warms up before any is measured, and the modes alternate per concurrency: neither is timed on a
        // less compiled or differently loaded server than the other.
        foreach (string mode in options.Modes)
        {
            for (int w = 0; w < options.Warmup; w++) await Send(http, model, options.Prompts[w % options.Prompts.Count], options.MaxTokens, mode, cancellation).ConfigureAwait(false);
        }
        foreach (int concurrency in options.Concurrency)
        {
            foreach (string mode in options.Modes)
            {
                var result = await Level(http, model, options, mode, concurrency, cancellation).ConfigureAwait(false);
                log?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{mode,-8} C={concurrency,-3} {result.TokensPerSecond,8:F1} tok/s  TTFT p50 {result.TimeToFirstTokenP50:F1} ms  ITL p50 {result.InterTokenP50:F2} ms  errors {result.Errors}"));
                results.Add(result);
            }
        }
        return results;
    }

    private static async Task<LoadResult> Level(HttpClient http, string model, LoadOptions options, string mode, int concurrency, CancellationToken cancellation)
    {
        int total = options.RequestsAt(concurrency), next = -1, errors = 0;
        long tokens = 0;
        var firsts = new List<double>();
        var gaps = new List<double>();
        var perToken = new List<double>();
        var clock = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= total) return;
                var sample = await Send(http, model, options.Prompts[i % options.Prompts.Count], options.MaxTokens, mode, cancellation).ConfigureAwait(false);
                lock (firsts)
                {
                    if (sample is null) { errors++; continue; }
                    tokens += sample.Tokens;
                    firsts.Add(sample.TimeToFirstToken);
                    gaps.AddRange(sample.Gaps);
                    if (sample.Tokens > 1) perToken.Add((sample.Total - sample.TimeToFirstToken) / (sample.Tokens - 1));
                }
            }
        }).ToArray();
        await Task.WhenAll(clients).ConfigureAwait(false);
        double wall = clock.Elapsed.TotalSeconds;
        return new LoadResult(mode, concurrency, total, errors, tokens, wall,
            Percentile(firsts, 0.5), Percentile(firsts, 0.99), Percentile(gaps, 0.5), Percentile(gaps, 0.99),
            perToken.Count == 0 ? double.NaN : perToken.Average());
    }

    private sealed record Sample(double TimeToFirstToken, double Total, int Tokens, List<double> Gaps);

    /// <summary>One streamed completion; times in milliseconds. Null when it failed.</summary>
    private static async Task<Sample?> Send(HttpClient http, string model, string prompt, int maxTokens, string mode, CancellationToken cancellation)
    {
        var body = JsonSerializer.Serialize(new
        {
            model, prompt, max_tokens = maxTokens, temperature = 0, ignore_eos = true, stream = true,
            stream_options = new { include_usage = true }, kangaroo = mode == "kangaroo",
        });
        var start = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellation).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            Report($"status {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellation).ConfigureAwait(false)}");
            return null;
        }
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellation).ConfigureAwait(false));
        double first = double.NaN, last = 0;
        int tokens = 0;
        var gaps = new List<double>();
        bool done = false;
        while (await reader.ReadLineAsync(cancellation).ConfigureAwait(false) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            string data = line[6..];
            if (data == "[DONE]") { done = true; break; }
            double now = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var chunk = JsonNode.Parse(data)!;
            if (chunk["error"] is not null)
            {
                Report(data);
                return null;
            }
            if (chunk["usage"] is JsonObject usage) tokens = (int)usage["completion_tokens"]!;
            var choices = chunk["choices"]!.AsArray();
            if (choices.Count == 0 || ((string?)choices[0]!["text"])?.Length is null or 0) continue;
            if (double.IsNaN(first)) first = now;
            else gaps.Add(now - last);
            last = now;
        }
        if (!done || double.IsNaN(first)) return null;
        return new Sample(first, Stopwatch.GetElapsedTime(start).TotalMilliseconds, tokens, gaps);
    }

    private static int _reported;

    /// <summary>The first failed request's answer goes to standard error: errors are counted, but one must say why.</summary>
    private static void Report(string answer)
    {
        if (Interlocked.Exchange(ref _reported, 1) == 0) Console.Error.WriteLine($"kangaroo-loadbench: a request failed: {answer}");
    }

    private static async Task<string> FirstModel(HttpClient http, CancellationToken cancellation)
    {
        var models = JsonNode.Parse(await http.GetStringAsync("v1/models", cancellation).ConfigureAwait(false))!;
        return (string?)models["data"]?[0]?["id"] ?? throw new LoadUsageException("the server lists no model");
    }

    private static double Percentile(List<double> values, double q)
    {
        if (values.Count == 0) return double.NaN;
        values.Sort();
        double rank = q * (values.Count - 1);
        int low = (int)Math.Floor(rank), high = (int)Math.Ceiling(rank);
        return values[low] + (values[high] - values[low]) * (rank - low);
    }
}

/// <summary>The results as a Markdown table and as JSON.</summary>
public static class LoadReport
{
    public static string Markdown(IReadOnlyList<LoadResult> results, LoadOptions options)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(c, $"| mode | clients | requests | tokens/request | throughput tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | TPOT ms | errors |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in results)
        {
            text.AppendLine(c, $"| {r.Mode} | {r.Concurrency} | {r.Requests} | {options.MaxTokens} | {r.TokensPerSecond:F1} | {r.TimeToFirstTokenP50:F1} | {r.TimeToFirstTokenP99:F1} | {r.InterTokenP50:F2} | {r.InterTokenP99:F2} | {r.TimePerOutputTokenMean:F2} | {r.Errors} |");
        }
        text.AppendLine();
        foreach (int concurrency in results.Select(r => r.Concurrency).Distinct())
        {
            var vanilla = results.FirstOrDefault(r => r.Mode == "vanilla" && r.Concurrency == concurrency);
            var kangaroo = results.FirstOrDefault(r => r.Mode == "kangaroo" && r.Concurrency == concurrency);
            if (vanilla is not null && kangaroo is not null)
                text.AppendLine(c, $"Kangaroo ÷ vanilla throughput at {concurrency} clients: {kangaroo.TokensPerSecond / vanilla.TokensPerSecond:F2}×  ");
        }
        return text.ToString().TrimEnd();
    }

    public static string Json(IReadOnlyList<LoadResult> results, LoadOptions options)
    {
        var array = new JsonArray();
        foreach (var r in results)
        {
            array.Add(new JsonObject
            {
                ["mode"] = r.Mode, ["clients"] = r.Concurrency, ["requests"] = r.Requests, ["errors"] = r.Errors,
                ["max_tokens"] = options.MaxTokens, ["output_tokens"] = r.OutputTokens, ["wall_s"] = Round(r.WallSeconds),
                ["tokens_per_s"] = Round(r.TokensPerSecond), ["ttft_p50_ms"] = Round(r.TimeToFirstTokenP50), ["ttft_p99_ms"] = Round(r.TimeToFirstTokenP99),
                ["itl_p50_ms"] = Round(r.InterTokenP50), ["itl_p99_ms"] = Round(r.InterTokenP99), ["tpot_mean_ms"] = Round(r.TimePerOutputTokenMean),
            });
        }
        return new JsonObject { ["load"] = array }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonNode? Round(double value) => double.IsFinite(value) ? JsonValue.Create(Math.Round(value, 3)) : null;
}
