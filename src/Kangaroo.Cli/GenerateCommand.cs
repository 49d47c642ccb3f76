using System.Globalization;
using Kangaroo.Backends;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Speculative;

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

        """ + "\n" + KangarooArguments.Help + "\n" + """

          --backend NAME       auto (default: cuda, else ILGPU on a GPU, else cpu), cuda, ilgpu or cpu
          --threads N          CPU threads (default: all cores)
          --quiet              No stats line
          --verbose            Stack traces with errors
          --help               This text
        """;

    private static readonly string[] ValueOptions =
        ["model", "max-tokens", "temperature", "top-k", "top-p", "seed", "stop", "context", "backend", "threads",
         .. KangarooArguments.ValueOptions];
    private static readonly string[] FlagOptions = ["help", "verbose", "quiet", "ignore-eos", "no-bos", KangarooArguments.Flag, TreeArguments.Flag];

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
        bool promptFromStdin = a.Positionals.Count == 0 || a.Positionals[0] == "-";
        // Reading an interactive terminal would wait silently for input that the user does not know is expected.
        if (promptFromStdin && stdin == Console.In && !Console.IsInputRedirected)
            throw new UsageException("no prompt: give it as an argument (kangaroo generate \"...\") or pipe it on standard input");
        string prompt = promptFromStdin ? stdin.ReadToEnd() : a.Positionals[0];
        if (prompt.Length == 0) throw new UsageException("the prompt is empty: give it as an argument or on standard input");

        var speculation = KangarooArguments.Parse(a);
        bool kangaroo = speculation is not null;
        ValidateBeforeLoading(a);

        string modelDirectory = Cli.ResolveModelDirectory(a.String("model"));
        using var backend = BackendFactory.Create(a.String("backend"), a.Int("threads"), a.Flag("verbose") ? stderr : null);
        using var model = ModelLoading.Load(modelDirectory, backend, a.Int("context"), stderr,
            loadAdapter: kangaroo, adapterDirectory: a.String("adapter"));
        KangarooArguments.CheckLoaded(speculation, model, modelDirectory);

        var defaults = model.GenerationConfig;
        var sampling = defaults.DefaultSampling;
        var options = new GenerationOptions
        {
            MaxNewTokens = a.Int("max-tokens") ?? defaults.MaxNewTokens ?? 256,
            Temperature = a.Float("temperature") ?? sampling.Temperature,
            TopK = a.Int("top-k") ?? sampling.TopK,
            TopP = a.Float("top-p") ?? sampling.TopP,
            Seed = a.UInt64("seed"),
            StopStrings = a.All("stop").Select(UnescapeStop).ToArray(),
            StopAtEndOfSequence = !a.Flag("ignore-eos"),
            AddBos = a.Flag("no-bos") ? false : null,
            Speculation = speculation,
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
            if (!a.Flag("quiet"))
            {
                stderr.WriteLine(FormatStats(result, backend));
                if (result.Speculation is { } stats) stderr.WriteLine(FormatSpeculation(stats, speculation!, model));
            }
            return result.StopReason == StopReason.Cancelled ? 130 : Cli.Success;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>
    /// Checks the values given on the command line before the (possibly long) model load, so a mistyped option fails at
    /// once. The full options, with the model's generation_config.json defaults, are validated again after loading.
    /// </summary>
    private static void ValidateBeforeLoading(Arguments a)
    {
        try
        {
            new GenerationOptions
            {
                MaxNewTokens = a.Int("max-tokens") ?? 1,
                Temperature = a.Float("temperature") ?? 0f,
                TopK = a.Int("top-k") ?? 0,
                TopP = a.Float("top-p") ?? 1f,
                StopStrings = a.All("stop"),
            }.Validate();
        }
        catch (InvalidRequestException e)
        {
            throw new UsageException(e.Message);
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

    internal static string FormatSpeculation(SpeculativeStats s, KangarooOptions options, LanguageModel model)
    {
        int exit = options.ExitLayer ?? model.Adapter?.RecordedExitLayer ?? KangarooOptions.DefaultExitLayer;
        var c = CultureInfo.InvariantCulture;
        string drafting = options.Tree is { } tree
            ? string.Create(c, $"tree top-k {tree.TopK}, threshold {tree.Threshold}, budget {tree.Budget}")
            : string.Create(c, $"threshold {options.Threshold}");
        return string.Create(c,
            $"[kangaroo] exit layer {exit}/{model.Config.NumLayers}, draft steps {options.MaxDraftSteps}, {drafting}: " +
            $"rounds {s.Rounds}, drafted {s.Drafted}, accepted {s.Accepted} ({100 * s.AcceptanceRate:F1}%), " +
            $"mean accepted tokens per round {s.MeanAcceptedPerRound:F2}, draft {s.DraftTime.TotalMilliseconds:F1} ms, verify {s.VerifyTime.TotalMilliseconds:F1} ms");
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

/// <summary>Creates the backend named on the command line (through <see cref="BackendSelector"/>).</summary>
internal static class BackendFactory
{
    public static IComputeBackend Create(string? name, int? threads, TextWriter? log = null)
    {
        if (threads is < 1) throw new UsageException($"--threads must be at least 1, got {threads}");
        name ??= "auto";
        if (!BackendSelector.Names.Contains(name))
            throw new UsageException($"unknown backend '{name}' (available: {string.Join(", ", BackendSelector.Names)})");
        var choice = BackendSelector.Create(name, threads);
        if (log is not null)
        {
            foreach (string reason in choice.FallbackReasons) log.WriteLine($"kangaroo: backend {choice.Backend.Name} (passed over {reason})");
        }
        return choice.Backend;
    }
}

/// <summary>Loads a model with a progress bar on a terminal.</summary>
internal static class ModelLoading
{
    public static LanguageModel Load(string directory, IComputeBackend backend, int? context, TextWriter stderr,
        bool loadAdapter = false, string? adapterDirectory = null)
    {
        if (context is < 2) throw new UsageException($"--context must be at least 2, got {context}");
        if (context is int requested)
        {
            // Past the trained positions the output is silently degraded, and a huge KV cache exhausts memory.
            int trained = Model.LlamaConfig.LoadFromDirectory(directory).MaxPositionEmbeddings;
            if (requested > trained)
                throw new UsageException($"--context {requested} is more than the model's max_position_embeddings ({trained})");
        }
        var bar = stderr == Console.Error && !Console.IsErrorRedirected ? new ProgressBar(stderr, "loading") : null;
        try
        {
            return LanguageModel.Load(directory, new ModelLoadOptions
            {
                Backend = backend, ContextLength = context, Progress = bar, LoadAdapter = loadAdapter, AdapterDirectory = adapterDirectory,
            });
        }
        finally
        {
            bar?.Complete();
        }
    }
}
