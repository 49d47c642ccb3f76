using System.Globalization;
using Kangaroo.Backends;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;

namespace Kangaroo.Cli;

internal static class GenerateCommand
{
    private const string Help = """
        Usage: kangaroo generate [options] [PROMPT]

        Generates a continuation of PROMPT (or of standard input when PROMPT is absent or '-').
        The text streams to standard output; a stats line goes to standard error.

        Options:
          --model DIR          Hugging Face Llama model directory (default: the demo model installed with kangaroo)
          --max-tokens N       Most new tokens (default 256, or the model's max_new_tokens)
          --temperature T      0 = greedy (default unless the model's generation_config.json samples)
          --top-k K            Sample among the K most likely tokens (0 = off)
          --top-p P            Nucleus sampling threshold in (0, 1] (1 = off)
          --seed S             Sampling seed: same seed, same output
          --stop TEXT          Stop when TEXT appears (repeatable); TEXT is not printed
          --ignore-eos         Keep going past end-of-sequence tokens
          --no-bos             Do not prepend the BOS token
          --context N          KV cache positions (default min(max_position_embeddings, 4096))
          --backend NAME       cpu (default)
          --threads N          CPU threads (default: all cores)
          --quiet              No stats line
          --verbose            Stack traces with errors
          --help               This text
        """;

    private static readonly string[] ValueOptions =
        ["model", "max-tokens", "temperature", "top-k", "top-p", "seed", "stop", "context", "backend", "threads"];
    private static readonly string[] FlagOptions = ["help", "verbose", "quiet", "ignore-eos", "no-bos"];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader stdin)
    {
        var a = new Arguments(args, ValueOptions, FlagOptions);
        if (a.Flag("help"))
        {
            stdout.WriteLine(Help);
            return Cli.Success;
        }
        if (a.Positionals.Count > 1)
            throw new UsageException($"expected one PROMPT argument, got {a.Positionals.Count} (quote the prompt)");
        string prompt = a.Positionals.Count == 1 && a.Positionals[0] != "-" ? a.Positionals[0] : stdin.ReadToEnd();
        if (prompt.Length == 0) throw new UsageException("the prompt is empty: give it as an argument or on standard input");

        string modelDirectory = Cli.ResolveModelDirectory(a.String("model"));
        using var backend = BackendFactory.Create(a.String("backend"), a.Int("threads"));
        using var model = ModelLoading.Load(modelDirectory, backend, a.Int("context"), stderr);

        var defaults = model.GenerationConfig;
        bool sampleByDefault = defaults.DoSample == true;
        var options = new GenerationOptions
        {
            MaxNewTokens = a.Int("max-tokens") ?? defaults.MaxNewTokens ?? 256,
            Temperature = a.Float("temperature") ?? (sampleByDefault ? (float)(defaults.Temperature ?? 1.0) : 0f),
            TopK = a.Int("top-k") ?? (sampleByDefault ? defaults.TopK ?? 0 : 0),
            TopP = a.Float("top-p") ?? (sampleByDefault ? (float)(defaults.TopP ?? 1.0) : 1f),
            Seed = a.UInt64("seed"),
            StopStrings = a.All("stop").Select(UnescapeStop).ToArray(),
            StopAtEndOfSequence = !a.Flag("ignore-eos"),
            AddBos = a.Flag("no-bos") ? false : null,
        };
        options.Validate();

        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancellation.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            using var session = model.CreateSession();
            var run = session.Start(prompt, options, cancellation.Token);
            while (run.Step(out string piece))
            {
                if (piece.Length > 0)
                {
                    stdout.Write(piece);
                    stdout.Flush();
                }
            }
            stdout.WriteLine();
            var result = run.Result;
            if (!a.Flag("quiet")) stderr.WriteLine(FormatStats(result, backend));
            return result.StopReason == StopReason.Cancelled ? 130 : Cli.Success;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>Lets a shell user write "\n" or "\t" in a stop string.</summary>
    private static string UnescapeStop(string text) => text.Replace("\\n", "\n").Replace("\\t", "\t");

    internal static string FormatStats(GenerationResult result, IComputeBackend backend)
    {
        var t = result.Timings;
        var c = CultureInfo.InvariantCulture;
        return string.Create(c,
            $"[{backend.Name}] prompt tokens: {t.PromptTokens}, new tokens: {result.TokenIds.Count}, " +
            $"prefill: {t.PrefillTokensPerSecond:F1} tok/s, decode: {t.DecodeTokensPerSecond:F1} tok/s, stop: {Describe(result.StopReason)}");
    }

    private static string Describe(StopReason reason) => reason switch
    {
        StopReason.EndOfSequence => "end of sequence",
        StopReason.MaxTokens => "max tokens",
        StopReason.StopString => "stop string",
        StopReason.ContextFull => "context full",
        StopReason.Cancelled => "cancelled",
        _ => reason.ToString(),
    };
}

/// <summary>Creates the backend named on the command line.</summary>
internal static class BackendFactory
{
    public static IComputeBackend Create(string? name, int? threads)
    {
        if (threads is < 1) throw new UsageException($"--threads must be at least 1, got {threads}");
        return (name ?? "cpu") switch
        {
            "cpu" => new CpuBackend(threads),
            _ => throw new UsageException($"unknown backend '{name}' (available: cpu)"),
        };
    }
}

/// <summary>Loads a model with a progress bar on a terminal.</summary>
internal static class ModelLoading
{
    public static LanguageModel Load(string directory, IComputeBackend backend, int? context, TextWriter stderr)
    {
        if (context is < 2) throw new UsageException($"--context must be at least 2, got {context}");
        var bar = stderr == Console.Error && !Console.IsErrorRedirected ? new ProgressBar(stderr, "loading") : null;
        try
        {
            return LanguageModel.Load(directory, new ModelLoadOptions { Backend = backend, ContextLength = context, Progress = bar });
        }
        finally
        {
            bar?.Complete();
        }
    }
}
