using System.Globalization;
using Kangaroo.Model;
using Kangaroo.Tokenization;
using Kangaroo.Weights;

namespace Kangaroo.Cli;

internal static class InspectCommand
{
    private const string Help = """
        Usage: kangaroo inspect [--model DIR]

        Shows a model's configuration, parameter count, tensor dtypes and memory by component, after checking
        that every tensor the configuration needs is present with the right shape.

        Options:
          --model DIR   Hugging Face Llama model directory (default: the demo model installed with kangaroo)
          --verbose     Stack traces with errors; list unused tensors
          --help        This text
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var a = new Arguments(args, ["model"], ["help", "verbose"]);
        if (a.Flag("help"))
        {
            stdout.WriteLine(Help);
            return Cli.Success;
        }
        if (a.Positionals.Count > 0) throw new UsageException($"unexpected argument '{a.Positionals[0]}'");
        string directory = Cli.ResolveModelDirectory(a.String("model"));
        var c = LlamaConfig.LoadFromDirectory(directory);
        using var weights = WeightStore.OpenDirectory(directory);

        var components = new SortedDictionary<string, (long Parameters, long Bytes)>(StringComparer.Ordinal);
        var dtypes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        long parameters = 0, bytes = 0;
        var views = LlamaModel.CheckedViews(c, weights);
        foreach (var view in views)
        {
            string component = Component(view.Name);
            var (p, b) = components.GetValueOrDefault(component);
            components[component] = (p + view.ElementCount, b + view.ByteLength);
            dtypes[view.DType.ToString()] = dtypes.GetValueOrDefault(view.DType.ToString()) + 1;
            parameters += view.ElementCount;
            bytes += view.ByteLength;
        }

        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine($"model:       {Path.GetFullPath(directory)}");
        stdout.WriteLine($"type:        {c.ModelType}, {c.NumLayers} layers, hidden {c.HiddenSize}, ffn {c.IntermediateSize}, vocab {c.VocabSize}");
        stdout.WriteLine($"attention:   {c.NumHeads} heads, {c.NumKvHeads} kv heads ({(c.NumKvHeads == c.NumHeads ? "MHA" : c.NumKvHeads == 1 ? "MQA" : "GQA")}), head dim {c.HeadDim}{(c.QueryKeyNorm ? ", q/k head norms" : "")}{(c.QkvBias ? c.OutputBias ? ", q/k/v/o biases" : ", q/k/v biases" : "")}{(c.SlidingWindow is int slidingWindow ? $", sliding window {slidingWindow}" : "")}{(c.MlpBias ? "; mlp biases" : "")}");
        stdout.WriteLine(string.Create(inv, $"rope:        theta {c.RopeTheta}, scaling {(c.RopeScaling is { } s ? $"{s.Type} (factor {s.Factor}, original context {s.OriginalMaxPositionEmbeddings})" : "none")}, max positions {c.MaxPositionEmbeddings}"));
        stdout.WriteLine(string.Create(inv, $"norm:        RMSNorm eps {c.RmsNormEps}; tied embeddings: {(c.TieWordEmbeddings ? "yes" : "no")}"));
        stdout.WriteLine($"tokens:      bos {c.BosTokenId?.ToString(inv) ?? "none"}, eos {(c.EosTokenIds.Count > 0 ? string.Join(", ", c.EosTokenIds) : "none")}");
        stdout.WriteLine($"tokenizer:   {DescribeTokenizer(directory)}");
        stdout.WriteLine(string.Create(inv, $"parameters:  {parameters:N0} ({parameters / 1e6:F2} M)"));
        stdout.WriteLine($"dtypes:      {string.Join(", ", dtypes.Select(d => $"{d.Key} ({d.Value} tensors)"))}{(c.TorchDType is { } td ? $"; config says {td}" : "")}");
        stdout.WriteLine("memory by component:");
        foreach (var (component, (p, b)) in components)
            stdout.WriteLine(string.Create(inv, $"  {component,-12} {FormatBytes(b),12}  {p,14:N0} parameters"));
        stdout.WriteLine(string.Create(inv, $"  {"total",-12} {FormatBytes(bytes),12}"));
        long kvPerToken = 2L * c.NumLayers * c.KvWidth * sizeof(float);
        stdout.WriteLine(string.Create(inv, $"kv cache:    {FormatBytes(kvPerToken)} per position (F32 on the CPU backend)"));
        stdout.WriteLine($"files:       {string.Join(", ", weights.Files.Select(f => $"{Path.GetFileName(f)} ({FormatBytes(new FileInfo(f).Length)})"))}");

        // Only buffers derived from the config (old rotary inv_freq copies) can be left over: anything else was refused.
        var used = views.Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        var unused = weights.TensorNames.Where(n => !used.Contains(n)).Order(StringComparer.Ordinal).ToList();
        if (unused.Count > 0)
        {
            stdout.WriteLine($"ignored:     {unused.Count} derived buffers{(a.Flag("verbose") ? ": " + string.Join(", ", unused) : " (--verbose lists them)")}");
        }
        return Cli.Success;
    }

    // Which file the engine reads the tokenizer from and what it does; a tokenizer the engine refuses is named here
    // with the reason (generate would stop on it), without ending the inspection.
    private static string DescribeTokenizer(string directory)
    {
        try
        {
            var t = TextTokenizer.Load(directory);
            return $"{t.Source}; bos {t.BosTokenId?.ToString(CultureInfo.InvariantCulture) ?? "none"}{(t.AddBosToken ? " (added)" : "")}, " +
                $"eos {t.EosTokenId?.ToString(CultureInfo.InvariantCulture) ?? "none"}";
        }
        catch (ModelFormatException e)
        {
            return $"not readable: {e.Message}";
        }
    }

    private static string Component(string name) => name switch
    {
        "model.embed_tokens.weight" => "embedding",
        "lm_head.weight" => "lm head",
        _ when name.Contains("self_attn.", StringComparison.Ordinal) => "attention",
        _ when name.Contains(".mlp.", StringComparison.Ordinal) => "mlp",
        _ => "norms",
    };

    internal static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F2} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 10):F1} KiB"),
        _ => $"{bytes} B",
    };
}
