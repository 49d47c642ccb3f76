using System.Globalization;
using System.Text.Json;
using Kangaroo.Diagnostics;
using Kangaroo.Model;
using Kangaroo.Speculative;

namespace Kangaroo.Cli;

/// <summary>
/// <c>kangaroo bench</c>: step timings of a model on a backend — a vanilla decode step, verification of k tokens, a
/// Kangaroo draft step — at a given context, with the weight-read bandwidth a decode step implies.
/// </summary>
internal static class BenchCommand
{
    private const string Help = """
        Usage: kangaroo bench [options]

        Times the steps decoding is made of, at a filled context: one vanilla decode step (all layers + LM head),
        verification of k tokens (layers [ℓ, L) over k rows + LM head), and one Kangaroo draft step (layers [0, ℓ) +
        adapter + LM head; needs an adapter). Medians over repetitions after a warm-up. No tokenizer needed.

        Options:
          --model DIR          Model directory (default: the demo model installed with kangaroo)
          --backend NAME       auto (default), cuda, ilgpu or cpu
          --threads N          CPU threads (default: all cores)
          --context N          Positions in the KV cache while timing (default 1024)
          --repetitions N      Timed repetitions per step (default 20)
          --exit-layer L       ℓ for the verify and draft steps (default: the adapter's, else 2)
          --adapter DIR        Adapter for the draft step (default: the model's kangaroo-adapter/ if present)
          --kernels            Also time each op at the model's shapes (1 and 8 rows), with bytes moved and GB/s
          --json FILE          Also write the figures as JSON
          --verbose            Stack traces with errors
          --help               This text
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var a = new Arguments(args, ["model", "backend", "threads", "context", "repetitions", "exit-layer", "adapter", "json"], ["help", "verbose", "kernels"]);
        if (a.Flag("help"))
        {
            stdout.WriteLine(Help);
            return Cli.Success;
        }
        if (a.Positionals.Count > 0) throw new UsageException($"unexpected argument '{a.Positionals[0]}'");
        int context = a.Int("context") ?? 1024;
        int repetitions = a.Int("repetitions") ?? 20;
        if (context < 1) throw new UsageException($"--context must be at least 1, got {context}");
        if (repetitions < 1) throw new UsageException($"--repetitions must be at least 1, got {repetitions}");

        string directory = Cli.ResolveModelDirectory(a.String("model"));
        using var backend = BackendFactory.Create(a.String("backend"), a.Int("threads"), stderr);
        using var model = LlamaModel.Load(directory, backend);
        string? adapterDirectory = a.String("adapter") ?? KangarooAdapter.BundledDirectory(directory);
        using var adapter = adapterDirectory is null ? null : KangarooAdapter.Load(adapterDirectory, model);
        int exitLayer = a.Int("exit-layer") ?? adapter?.RecordedExitLayer ?? KangarooOptions.DefaultExitLayer;
        if (exitLayer < 1 || exitLayer >= model.Config.NumLayers)
            throw new UsageException($"--exit-layer must be in [1, {model.Config.NumLayers - 1}], got {exitLayer}");

        var t = StepBenchmark.Run(model, adapter, context, exitLayer, repetitions);
        var inv = CultureInfo.InvariantCulture;
        double weightGb = model.WeightBytes / 1e9;
        stdout.WriteLine($"backend:      {backend.Name}: {backend.DeviceName}");
        stdout.WriteLine(string.Create(inv, $"model:        {Path.GetFullPath(directory)}: {model.Config.NumLayers} layers, hidden {model.Config.HiddenSize}, {weightGb:F3} GB of weights"));
        stdout.WriteLine(string.Create(inv, $"context:      {context} positions, exit layer {exitLayer}, median of {repetitions}"));
        stdout.WriteLine(string.Create(inv, $"decode step:  {t.FullStepMs:F3} ms ({1000 / t.FullStepMs:F1} tok/s; weights read at {weightGb / t.FullStepMs * 1000:F1} GB/s)"));
        double verify1 = t.VerifyMs[1];
        foreach (var (rows, ms) in t.VerifyMs)
            stdout.WriteLine(string.Create(inv, $"verify {rows,2}:    {ms:F3} ms ({ms / verify1:F2} × verify 1)"));
        if (t.DraftStepMs is double draft)
            stdout.WriteLine(string.Create(inv, $"draft step:   {draft:F3} ms ({draft / t.FullStepMs:F3} × a decode step)"));
        else
            stdout.WriteLine("draft step:   (no adapter)");

        IReadOnlyList<OpTiming>? ops = null;
        if (a.Flag("kernels"))
        {
            ops = OpBenchmark.Run(model, context, [1, 8]);
            stdout.WriteLine();
            stdout.WriteLine($"{"op",-18} {"shape",-44} {"µs",10} {"MB moved",10} {"GB/s",9}");
            foreach (var op in ops)
                stdout.WriteLine(string.Create(inv, $"{op.Op,-18} {op.Shape,-44} {op.Microseconds,10:F2} {op.Bytes / 1e6,10:F2} {op.GigabytesPerSecond,9:F1}"));
        }

        if (a.String("json") is { } jsonPath)
        {
            var json = new Dictionary<string, object?>
            {
                ["backend"] = backend.Name,
                ["device"] = backend.DeviceName,
                ["model"] = Path.GetFullPath(directory),
                ["layers"] = model.Config.NumLayers,
                ["weight_bytes"] = model.WeightBytes,
                ["context"] = context,
                ["exit_layer"] = exitLayer,
                ["decode_step_ms"] = t.FullStepMs,
                ["verify_ms"] = t.VerifyMs.ToDictionary(p => p.Key.ToString(inv), p => p.Value),
                ["draft_step_ms"] = t.DraftStepMs,
                ["ops"] = ops?.Select(o => new Dictionary<string, object> { ["op"] = o.Op, ["shape"] = o.Shape, ["us"] = o.Microseconds, ["bytes"] = o.Bytes, ["gb_s"] = o.GigabytesPerSecond }).ToList(),
            };
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
        }
        return Cli.Success;
    }
}
