using System.Globalization;
using Kangaroo.Model;
using Kangaroo.Tokenization;
using Kangaroo.Weights;

namespace Kangaroo.Cli;

internal static class RandomModelCommand
{
    private const string Help = """
        Usage: kangaroo random-model OUTDIR [--preset NAME] [options]

        Writes a Hugging Face Llama model directory with deterministic random weights (config.json, safetensors,
        optionally sharded with model.safetensors.index.json), for benchmarks and tests that need real shapes.
        Weights are streamed: memory stays flat whatever the model size.

        Shape (required unless --preset gives them; explicit options override the preset):
          --preset NAME        llama2-7b (hidden 4096, 32 layers, 32 heads, ffn 11008, vocab 32000, F16, 13.5 GB)
                               llama3-8b (hidden 4096, 32 layers, 32 heads, 8 kv, ffn 14336, vocab 128256,
                                          rope llama3, BF16, 16.1 GB)
                               qwen3-8b  (qwen3: hidden 4096, 36 layers, 32 heads, 8 kv, head dim 128, ffn 12288,
                                          vocab 151936, q/k norms, BF16, 16.4 GB)
                               qwen2.5-7b (qwen2: hidden 3584, 28 layers, 28 heads, 4 kv, ffn 18944, vocab 152064,
                                          q/k/v biases, BF16, 15.2 GB)
                               tiny-10m  (~10M parameters: hidden 256, 12 layers, 8 heads, ffn 688,
                                          vocab from --tokenizer-from, else 1500, F16)
          --architecture A     llama (default), mistral (no sliding window), qwen2 (q/k/v biases) or qwen3 (q/k head norms)
          --attention-bias     Biases on q/k/v/o_proj (llama, qwen3: attention_bias)
          --mlp-bias           Biases on gate/up/down_proj (llama: mlp_bias)
          --sliding-window W   Mistral's sliding_window: each position attends to the last W (mistral only)
          --hidden H           Hidden size
          --layers L           Decoder layers
          --heads N            Attention heads
          --kv-heads K         Key/value heads (default N; fewer is GQA)
          --head-dim D         Head dimension (default H / N)
          --ffn F              MLP intermediate size (default 8H/3 rounded up to a multiple of 256, as Llama)
          --vocab V            Vocabulary size (default: the tokenizer's, else 32000)
          --max-positions P    max_position_embeddings (default 2048; 4096 for llama2-7b)
          --tie-embeddings     Share the embedding matrix with the LM head

        Output:
          --dtype T            f16 (default), bf16 or f32
          --seed S             Weight seed (default 1): same seed and shape, identical files
          --shard-size SIZE    Most tensor bytes per file, e.g. 2GB, 500MB, 1GiB (default: one file)
          --tokenizer-from DIR Copy DIR's tokenizer.model (+ tokenizer_config.json); BOS/EOS ids come from it
          --adapter-exit-layer L  Also write a random Kangaroo adapter for exit layer L into OUTDIR/kangaroo-adapter
          --force              Replace a model already in OUTDIR
          --verbose            Stack traces with errors
          --help               This text
        """;

    private static readonly string[] ValueOptions =
        ["preset", "architecture", "sliding-window", "hidden", "layers", "heads", "kv-heads", "head-dim", "ffn", "vocab", "max-positions", "dtype", "seed",
         "shard-size", "tokenizer-from", "adapter-exit-layer"];
    private static readonly string[] FlagOptions = ["help", "verbose", "tie-embeddings", "force", "attention-bias", "mlp-bias"];
    private const string KangarooAdapterFolder = Speculative.KangarooAdapter.DefaultSubdirectory;

    /// <summary>A preset's shape; a null vocabulary means "the tokenizer's, else the fallback".</summary>
    private sealed record Preset(int Hidden, int Layers, int Heads, int Ffn, int? Vocab, int FallbackVocab, int MaxPositions, DType DType)
    {
        public string Architecture { get; init; } = "llama";
        public int? KvHeads { get; init; }
        public int? HeadDim { get; init; }
        public double RopeTheta { get; init; } = 10000.0;
        public RopeScaling? RopeScaling { get; init; }
        public double RmsNormEps { get; init; } = 1e-5;
    }

    // The published configs' shapes (Llama-3.1-8B, Qwen3-8B), for timings at real sizes.
    private static readonly Dictionary<string, Preset> Presets = new(StringComparer.Ordinal)
    {
        ["llama2-7b"] = new(Hidden: 4096, Layers: 32, Heads: 32, Ffn: 11008, Vocab: 32000, FallbackVocab: 32000, MaxPositions: 4096, DType.F16),
        ["llama3-8b"] = new(Hidden: 4096, Layers: 32, Heads: 32, Ffn: 14336, Vocab: 128256, FallbackVocab: 128256, MaxPositions: 131072, DType.BF16)
        {
            KvHeads = 8, RopeTheta = 500000.0, RopeScaling = new RopeScaling("llama3", 8.0, 1.0, 4.0, 8192),
        },
        ["qwen3-8b"] = new(Hidden: 4096, Layers: 36, Heads: 32, Ffn: 12288, Vocab: 151936, FallbackVocab: 151936, MaxPositions: 40960, DType.BF16)
        {
            Architecture = "qwen3", KvHeads = 8, HeadDim = 128, RopeTheta = 1000000.0, RmsNormEps = 1e-6,
        },
        ["qwen2.5-7b"] = new(Hidden: 3584, Layers: 28, Heads: 28, Ffn: 18944, Vocab: 152064, FallbackVocab: 152064, MaxPositions: 32768, DType.BF16)
        {
            Architecture = "qwen2", KvHeads = 4, RopeTheta = 1000000.0, RmsNormEps = 1e-6,
        },
        ["tiny-10m"] = new(Hidden: 256, Layers: 12, Heads: 8, Ffn: 688, Vocab: null, FallbackVocab: 1500, MaxPositions: 2048, DType.F16),
    };

    private static readonly string[] Architectures = ["llama", "mistral", "qwen2", "qwen3"];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var a = new Arguments(args, ValueOptions, FlagOptions);
        if (a.Flag("help"))
        {
            stdout.WriteLine(Help);
            return Cli.Success;
        }
        if (a.Positionals.Count != 1)
            throw new UsageException(a.Positionals.Count == 0 ? "random-model needs an output directory" : $"unexpected argument '{a.Positionals[1]}'");
        string directory = a.Positionals[0];
        int? adapterExitLayer = a.Int("adapter-exit-layer");

        Preset? preset = null;
        if (a.String("preset") is { } presetName && !Presets.TryGetValue(presetName, out preset))
            throw new UsageException($"unknown preset '{presetName}' (presets: {string.Join(", ", Presets.Keys)})");

        string? tokenizerDirectory = a.String("tokenizer-from");
        // Loaded up front: it decides the default vocabulary and the BOS/EOS ids, and a bad one should fail before any writing.
        TextTokenizer? tokenizer = tokenizerDirectory is null ? null : TextTokenizer.Load(tokenizerDirectory);

        string architecture = a.String("architecture") ?? preset?.Architecture ?? "llama";
        if (!Architectures.Contains(architecture))
            throw new UsageException($"unknown --architecture '{architecture}' (architectures: {string.Join(", ", Architectures)})");
        bool attentionBias = a.Flag("attention-bias"), mlpBias = a.Flag("mlp-bias");
        if (attentionBias && architecture is not ("llama" or "qwen3"))
            throw new UsageException($"--attention-bias is for llama and qwen3 (transformers builds {architecture}'s attention {(architecture == "qwen2" ? "with q/k/v biases always" : "without biases")})");
        if (mlpBias && architecture != "llama")
            throw new UsageException($"--mlp-bias is for llama (transformers builds {architecture}'s MLP without biases)");
        int? slidingWindow = Positive(a, "sliding-window");
        if (slidingWindow is not null && architecture != "mistral")
            throw new UsageException($"--sliding-window is for mistral (transformers builds {architecture} without Mistral's window)");
        int hidden = Positive(a, "hidden") ?? preset?.Hidden ?? throw Missing("hidden");
        int layers = Positive(a, "layers") ?? preset?.Layers ?? throw Missing("layers");
        if (adapterExitLayer is int exit && (exit < 1 || exit >= layers))
            throw new UsageException($"--adapter-exit-layer must be in [1, {layers - 1}], got {exit}");
        int heads = Positive(a, "heads") ?? preset?.Heads ?? throw Missing("heads");
        int kvHeads = Positive(a, "kv-heads") ?? preset?.KvHeads ?? heads;
        int? explicitHeadDim = Positive(a, "head-dim") ?? preset?.HeadDim;
        if (explicitHeadDim is null && hidden % heads != 0)
            throw new UsageException($"--heads {heads} does not divide --hidden {hidden}: give --head-dim");
        int headDim = explicitHeadDim ?? hidden / heads;
        if (headDim % 2 != 0) throw new UsageException($"the head dimension must be even for rotary embeddings, got {headDim}");
        if (heads % kvHeads != 0) throw new UsageException($"--kv-heads {kvHeads} must divide --heads {heads}");
        int ffn = Positive(a, "ffn") ?? preset?.Ffn ?? LlamaIntermediateSize(hidden);
        int vocab = Positive(a, "vocab") ?? preset?.Vocab ?? tokenizer?.VocabularySize ?? preset?.FallbackVocab ?? 32000;
        if (tokenizer is not null && tokenizer.VocabularySize > vocab)
            throw new UsageException($"--vocab {vocab} is smaller than the tokenizer's {tokenizer.VocabularySize} pieces");
        int maxPositions = Positive(a, "max-positions") ?? preset?.MaxPositions ?? 2048;
        DType dtype = a.String("dtype") is { } dtypeName ? ParseDType(dtypeName) : preset?.DType ?? DType.F16;
        long? shardBytes = a.String("shard-size") is { } sizeText ? ParseByteSize("shard-size", sizeText) : null;

        var config = new LlamaConfig
        {
            HiddenSize = hidden,
            IntermediateSize = ffn,
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            RmsNormEps = preset?.RmsNormEps ?? 1e-5,
            RopeTheta = preset?.RopeTheta ?? 10000.0,
            RopeScaling = preset?.RopeScaling,
            MaxPositionEmbeddings = maxPositions,
            ModelType = architecture,
            QueryKeyNorm = architecture == "qwen3",
            QkvBias = architecture == "qwen2" || attentionBias,
            OutputBias = attentionBias,
            MlpBias = mlpBias,
            SlidingWindow = slidingWindow,
            TieWordEmbeddings = a.Flag("tie-embeddings"),
            // Llama's SentencePiece convention (<s> = 1, </s> = 2) unless the tokenizer says otherwise.
            BosTokenId = tokenizer is not null ? tokenizer.BosTokenId : vocab > 2 ? 1 : null,
            EosTokenIds = tokenizer is not null ? (tokenizer.EosTokenId is int eos ? [eos] : []) : vocab > 2 ? [2] : [],
        };

        var progress = new WriteProgress(stderr);
        var options = new RandomModelOptions
        {
            DType = dtype,
            Seed = a.UInt64("seed") ?? 1,
            MaxShardBytes = shardBytes,
            TokenizerDirectory = tokenizerDirectory,
            Overwrite = a.Flag("force"),
            Progress = progress,
        };

        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancellation.Cancel(); };
        Console.CancelKeyPress += onCancel;
        RandomModelSummary summary;
        try
        {
            summary = RandomModelWriter.Write(directory, config, options, cancellation.Token);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            progress.Complete();
            stderr.WriteLine($"kangaroo: interrupted; {directory} holds a partial model");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        progress.Complete();
        if (adapterExitLayer is int exitLayer)
            RandomModelWriter.WriteAdapter(Path.Combine(directory, Speculative.KangarooAdapter.DefaultSubdirectory), config, exitLayer, dtype, options.Seed + 1);

        var inv = CultureInfo.InvariantCulture;
        double seconds = summary.Elapsed.TotalSeconds;
        stdout.WriteLine($"model:       {Path.GetFullPath(directory)}");
        stdout.WriteLine($"shape:       {architecture}, {layers} layers, hidden {hidden}, {heads} heads ({kvHeads} kv, head dim {headDim}), ffn {ffn}, vocab {vocab}{(config.TieWordEmbeddings ? ", tied embeddings" : "")}");
        stdout.WriteLine(string.Create(inv, $"parameters:  {summary.Parameters:N0} ({summary.Parameters / 1e6:F2} M)"));
        stdout.WriteLine(string.Create(inv, $"weights:     {InspectCommand.FormatBytes(summary.TensorBytes)} {dtype} in {summary.WeightFiles.Count} file{(summary.WeightFiles.Count == 1 ? "" : "s")}{(tokenizer is not null ? ", tokenizer copied" : "")}"));
        if (adapterExitLayer is int l) stdout.WriteLine($"adapter:     random, exit layer {l}, in {KangarooAdapterFolder}/");
        stdout.WriteLine(string.Create(inv, $"time:        {seconds:F2} s ({summary.TensorBytes / (1 << 20) / Math.Max(seconds, 1e-9):F0} MiB/s)"));
        return Cli.Success;
    }

    /// <summary>Llama's rule: 2/3 of 4·hidden, rounded up to a multiple of 256 (4096 → 11008).</summary>
    internal static int LlamaIntermediateSize(int hidden)
    {
        long raw = 8L * hidden / 3;
        return (int)((raw + 255) / 256 * 256);
    }

    private static int? Positive(Arguments a, string name)
    {
        int? value = a.Int(name);
        if (value is <= 0) throw new UsageException($"option '--{name}' must be positive, got {value}");
        return value;
    }

    private static UsageException Missing(string name) =>
        new($"random-model needs --{name} (or a --preset: {string.Join(", ", Presets.Keys)})");

    private static DType ParseDType(string text) => text.ToLowerInvariant() switch
    {
        "f16" or "fp16" or "float16" => DType.F16,
        "bf16" or "bfloat16" => DType.BF16,
        "f32" or "fp32" or "float32" => DType.F32,
        _ => throw new UsageException($"option '--dtype' expects f16, bf16 or f32, got '{text}'"),
    };

    /// <summary>Bytes from "2GB" (decimal units, as Hugging Face's max_shard_size), "1GiB" (binary) or a plain number.</summary>
    internal static long ParseByteSize(string option, string text)
    {
        string trimmed = text.Trim();
        int unitStart = trimmed.Length;
        while (unitStart > 0 && char.IsAsciiLetter(trimmed[unitStart - 1])) unitStart--;
        long multiplier = trimmed[unitStart..].ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KIB" => 1L << 10,
            "MIB" => 1L << 20,
            "GIB" => 1L << 30,
            "TIB" => 1L << 40,
            _ => throw new UsageException($"option '--{option}': unknown unit in '{text}' (use B, KB, MB, GB, KiB, MiB or GiB)"),
        };
        if (!double.TryParse(trimmed[..unitStart], NumberStyles.Float, CultureInfo.InvariantCulture, out double number)
            || !(number > 0) || number * multiplier > long.MaxValue)
            throw new UsageException($"option '--{option}' expects a positive size such as 2GB or 500MB, got '{text}'");
        return Math.Max(1, (long)(number * multiplier));
    }

    /// <summary>
    /// Progress on standard error for writes worth waiting for (the loading bar's threshold): the bar on a terminal,
    /// a line every 10% when standard error is a file or pipe (GPU-machine logs).
    /// </summary>
    private sealed class WriteProgress(TextWriter stderr) : IProgress<LoadProgress>
    {
        private const long MinimumBytesWorthReporting = 256L << 20;
        private readonly ProgressBar? _bar = stderr == Console.Error && !Console.IsErrorRedirected ? new ProgressBar(stderr, "writing") : null;
        private int _lastTenth;

        public void Report(LoadProgress value)
        {
            if (_bar is not null)
            {
                _bar.Report(value);
                return;
            }
            if (value.TotalBytes < MinimumBytesWorthReporting) return;
            int tenth = (int)(10 * value.LoadedBytes / value.TotalBytes);
            if (tenth <= _lastTenth) return;
            _lastTenth = tenth;
            stderr.WriteLine($"writing: {10 * tenth}% ({InspectCommand.FormatBytes(value.LoadedBytes)} of {InspectCommand.FormatBytes(value.TotalBytes)})");
        }

        public void Complete() => _bar?.Complete();
    }
}
