using System.Globalization;
using System.Text.Json;
using Kangaroo.Backends;
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
        With --prompts, also end to end: each prompt generated greedily, vanilla and Kangaroo, on the same backend —
        decode tok/s and speedup, tokens per round, acceptance, draft vs verify time, and whether the outputs agree.

        Options:
          --model DIR          Model directory (default: the demo model installed with kangaroo)
          --backend NAME       auto (default), cuda, ilgpu or cpu
          --threads N          CPU threads (default: all cores)
          --context N          Positions in the KV cache while timing (default 1024)
          --repetitions N      Timed repetitions per step (default 20)
          --exit-layer L       ℓ for the verify and draft steps (default: the adapter's, else 2)
          --adapter DIR        Adapter for the draft step and end to end (default: the model's kangaroo-adapter/ if present)
          --kernels            Also time each op at the model's shapes (1 and 8 rows), with bytes moved and GB/s
          --kernel-rows LIST   With --kernels: the row counts to time each op at (default 1,8; e.g. 1,2,4,8,16,64)
          --verify-rows LIST   Row counts of the verification steps timed (default 1,2,4,8,16,64; 1 is always timed)
          --prompts FILE       End to end over the "prompt" of each JSON line (e.g. bench/data/prompts.jsonl)
          --prompt-count N     Only the first N prompts (default: all)
          --max-tokens N       New tokens per prompt, end to end (default 128; EOS ends a prompt earlier)
          --draft-steps G      Kangaroo's γ, end to end (default 6)
          --threshold T        Kangaroo's η, end to end (default 0.6)
          --no-steps           Skip the step timings (with --prompts)
          --tree               End to end: also Kangaroo with a token tree (its figures as "end_to_end_tree" in the JSON)
          --tree-top-k K, --tree-threshold T, --tree-budget N   The tree's settings (see kangaroo generate --help)
          --batch SIZES        End to end: also the whole prompt set with SIZES (e.g. 1,4,16) sequences decoded together,
                               vanilla and Kangaroo: total tok/s and speedup per size ("batch" in the JSON)
          --batch-draft-stop S With --batch: drafting ends for the batch once fewer than this share of its sequences
                               still draft (default 0.25; 0 = each drafts until its own stop)
          --outputs FILE       End to end: each prompt's token ids (prompt, vanilla, Kangaroo) and decode seconds, as JSON lines
          --json FILE          Also write the figures as JSON
          --markdown FILE      Also write the figures as a markdown table
          --verbose            Stack traces with errors
          --help               This text
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var a = new Arguments(args,
            ["model", "backend", "threads", "context", "repetitions", "exit-layer", "adapter", "json", "markdown", "prompts", "prompt-count",
             "max-tokens", "draft-steps", "threshold", "outputs", "batch", "batch-draft-stop", "kernel-rows", "verify-rows", .. TreeArguments.ValueOptions],
            ["help", "verbose", "kernels", "no-steps", TreeArguments.Flag]);
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

        string? promptsPath = a.String("prompts");
        int maxTokens = a.Int("max-tokens") ?? 128;
        if (maxTokens < 1) throw new UsageException($"--max-tokens must be at least 1, got {maxTokens}");
        int? promptCount = a.Int("prompt-count");
        if (promptCount is < 1) throw new UsageException($"--prompt-count must be at least 1, got {promptCount}");
        bool steps = !a.Flag("no-steps");
        if (!steps && promptsPath is null) throw new UsageException("--no-steps leaves nothing to do without --prompts");
        string? outputsPath = a.String("outputs");
        if (outputsPath is not null && promptsPath is null) throw new UsageException("--outputs needs --prompts");
        var speculation = new KangarooOptions
        {
            ExitLayer = a.Int("exit-layer"),
            MaxDraftSteps = a.Int("draft-steps") ?? 6,
            Threshold = a.Float("threshold") ?? 0.6f,
            BatchDraftStop = a.Float("batch-draft-stop") ?? 0.25f,
        };
        var tree = TreeArguments.Parse(a);
        if (tree is not null && promptsPath is null) throw new UsageException("--tree needs --prompts");
        int[]? batchSizes = a.String("batch") is { } batchText ? ParseSizes(batchText) : null;
        if (batchSizes is not null && promptsPath is null) throw new UsageException("--batch needs --prompts");
        if (a.String("batch-draft-stop") is not null && batchSizes is null) throw new UsageException("--batch-draft-stop needs --batch");
        IReadOnlyList<string>? prompts = promptsPath is null ? null : EndToEndBenchmark.ReadPrompts(promptsPath, promptCount);
        int[] kernelRows = a.String("kernel-rows") is { } kernelRowsText ? ParseSizes(kernelRowsText, "kernel-rows") : [1, 8];
        if (a.String("kernel-rows") is not null && !a.Flag("kernels")) throw new UsageException("--kernel-rows needs --kernels");
        int[] verifyRows = [.. (a.String("verify-rows") is { } verifyRowsText ? ParseSizes(verifyRowsText, "verify-rows") : [1, 2, 4, 8, 16, 64]).Append(1).Distinct().Order()];

        string directory = Cli.ResolveModelDirectory(a.String("model"));
        if (a.String("adapter") is { } adapterDirectory && !Directory.Exists(adapterDirectory))
            throw new ModelFormatException(adapterDirectory, "adapter directory not found");
        using var backend = BackendFactory.Create(a.String("backend"), a.Int("threads"), stderr);
        var inv = CultureInfo.InvariantCulture;
        var json = new Dictionary<string, object?> { ["backend"] = backend.Name, ["device"] = backend.DeviceName, ["model"] = Path.GetFullPath(directory) };
        var markdown = new StringWriter { NewLine = "\n" };
        stdout.WriteLine($"backend:      {backend.Name}: {backend.DeviceName}");
        markdown.WriteLine($"Backend: {backend.Name}: {backend.DeviceName}; model: {Path.GetFullPath(directory)}");
        if (backend is IBandwidthProbe probe)
        {
            // The ceilings the figures below are held against: 1 GiB on a GPU, 256 MiB (past any cache) on the CPU.
            var b = probe.MeasureBandwidth(backend.Name == "cpu" ? 256L << 20 : 1L << 30);
            string line = string.Create(inv, $"copy {b.CopyGigabytesPerSecond:F1} GB/s (read + write), read {b.ReadGigabytesPerSecond:F1} GB/s ({b.Bytes >> 20} MiB buffers)");
            stdout.WriteLine($"memory:       {line}");
            markdown.WriteLine();
            markdown.WriteLine($"Memory: {line}.");
            json["copy_tb_s"] = b.CopyGigabytesPerSecond / 1000;
            json["read_tb_s"] = b.ReadGigabytesPerSecond / 1000;
        }
        markdown.WriteLine();
        if (steps) StepTimings(a, directory, backend, context, repetitions, verifyRows, kernelRows, stdout, json, markdown);
        if (prompts is not null)
        {
            // The same adapter as the step timings: --adapter, else the model's kangaroo-adapter/.
            using var model = LanguageModel.Load(directory, new ModelLoadOptions { Backend = backend, AdapterDirectory = a.String("adapter") });
            if (model.Adapter is null)
                throw new UsageException($"{directory} has no kangaroo-adapter/ (pass --adapter DIR): the end-to-end comparison needs one");
            var single = EndToEnd(model, prompts, maxTokens, speculation, stdout, stderr, json, markdown, outputsPath, "end_to_end");
            if (tree is not null)
                EndToEnd(model, prompts, maxTokens, speculation with { Tree = tree }, stdout, stderr, json, markdown, null, "end_to_end_tree");
            if (batchSizes is not null)
            {
                Batched(model, prompts, maxTokens, speculation, batchSizes, single, stdout, stderr, json, markdown, "batch");
                // Every sequence drafts its own token tree; one pass verifies all the trees.
                if (tree is not null)
                    Batched(model, prompts, maxTokens, speculation with { Tree = tree }, batchSizes, single, stdout, stderr, json, markdown, "batch_tree");
            }
        }

        if (a.String("json") is { } jsonPath)
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
        if (a.String("markdown") is { } markdownPath)
            File.WriteAllText(markdownPath, markdown.ToString());
        return Cli.Success;
    }

    private static void StepTimings(Arguments a, string directory, IComputeBackend backend, int context, int repetitions,
        int[] verifyRows, int[] kernelRows, TextWriter stdout,
        Dictionary<string, object?> json, StringWriter markdown)
    {
        using var model = LlamaModel.Load(directory, backend);
        string? adapterDirectory = a.String("adapter") ?? KangarooAdapter.BundledDirectory(directory);
        using var adapter = adapterDirectory is null ? null : KangarooAdapter.Load(adapterDirectory, model);
        int exitLayer = a.Int("exit-layer") ?? adapter?.RecordedExitLayer ?? KangarooOptions.DefaultExitLayer;
        if (exitLayer < 1 || exitLayer >= model.Config.NumLayers)
            throw new UsageException($"--exit-layer must be in [1, {model.Config.NumLayers - 1}], got {exitLayer}");

        var t = StepBenchmark.Run(model, adapter, context, exitLayer, repetitions, verifyRows);
        var inv = CultureInfo.InvariantCulture;
        double weightGb = model.WeightBytes / 1e9;
        stdout.WriteLine(string.Create(inv, $"model:        {Path.GetFullPath(directory)}: {model.Config.NumLayers} layers, hidden {model.Config.HiddenSize}, {weightGb:F3} GB of weights"));
        stdout.WriteLine(string.Create(inv, $"context:      {context} positions, exit layer {exitLayer}, median of {repetitions}"));
        stdout.WriteLine(string.Create(inv, $"decode step:  {t.FullStepMs:F3} ms ({1000 / t.FullStepMs:F1} tok/s; weights read at {weightGb / t.FullStepMs * 1000:F1} GB/s)"));
        markdown.WriteLine(string.Create(inv, $"Steps at context {context}, exit layer {exitLayer}, median of {repetitions}:"));
        markdown.WriteLine();
        markdown.WriteLine("| step | ms | relative |");
        markdown.WriteLine("| --- | --- | --- |");
        markdown.WriteLine(string.Create(inv, $"| decode (all {model.Config.NumLayers} layers + LM head) | {t.FullStepMs:F3} | 1 |"));
        double verify1 = t.VerifyMs[1];
        foreach (var (rows, ms) in t.VerifyMs)
        {
            stdout.WriteLine(string.Create(inv, $"verify {rows,2}:    {ms:F3} ms ({ms / verify1:F2} × verify 1)"));
            markdown.WriteLine(string.Create(inv, $"| verify {rows} (layers [{exitLayer}, {model.Config.NumLayers}) + LM head) | {ms:F3} | {ms / verify1:F2} × verify 1 |"));
        }
        if (t.DraftStepMs is double draft)
        {
            stdout.WriteLine(string.Create(inv, $"draft step:   {draft:F3} ms ({draft / t.FullStepMs:F3} × a decode step)"));
            markdown.WriteLine(string.Create(inv, $"| draft (layers [0, {exitLayer}) + adapter + LM head) | {draft:F3} | {draft / t.FullStepMs:F3} × decode |"));
        }
        else
            stdout.WriteLine("draft step:   (no adapter)");
        if (t.LaunchesPerDecode is long decodeLaunches)
        {
            string verifyLaunches = string.Join(", ", t.LaunchesPerVerify!.Select(p => string.Create(inv, $"{p.Key}: {p.Value}")));
            string line = string.Create(inv, $"decode {decodeLaunches}, verify by rows {verifyLaunches}") +
                          (t.LaunchesPerDraft is long draftLaunches ? string.Create(inv, $", draft {draftLaunches}") : "");
            stdout.WriteLine($"launches:     {line}");
            markdown.WriteLine();
            markdown.WriteLine($"Kernel launches per step: {line}.");
        }
        markdown.WriteLine();

        IReadOnlyList<OpTiming>? ops = null;
        if (a.Flag("kernels"))
        {
            ops = OpBenchmark.Run(model, context, kernelRows);
            stdout.WriteLine();
            stdout.WriteLine($"{"op",-18} {"shape",-44} {"µs",10} {"MB moved",10} {"GB/s",9}");
            markdown.WriteLine("| op | shape | µs | MB moved | GB/s |");
            markdown.WriteLine("| --- | --- | --- | --- | --- |");
            foreach (var op in ops)
            {
                stdout.WriteLine(string.Create(inv, $"{op.Op,-18} {op.Shape,-44} {op.Microseconds,10:F2} {op.Bytes / 1e6,10:F2} {op.GigabytesPerSecond,9:F1}"));
                markdown.WriteLine(string.Create(inv, $"| {op.Op} | {op.Shape} | {op.Microseconds:F2} | {op.Bytes / 1e6:F2} | {op.GigabytesPerSecond:F1} |"));
            }
            markdown.WriteLine();
        }

        json["layers"] = model.Config.NumLayers;
        json["weight_bytes"] = model.WeightBytes;
        json["context"] = context;
        json["exit_layer"] = exitLayer;
        json["decode_step_ms"] = t.FullStepMs;
        json["verify_ms"] = t.VerifyMs.ToDictionary(p => p.Key.ToString(inv), p => p.Value);
        json["verify_over_verify1"] = t.VerifyMs.Where(p => p.Key > 1).ToDictionary(p => p.Key.ToString(inv), p => p.Value / t.VerifyMs[1]);
        json["draft_step_ms"] = t.DraftStepMs;
        json["launches_per_decode"] = t.LaunchesPerDecode;
        json["launches_per_verify"] = t.LaunchesPerVerify?.ToDictionary(p => p.Key.ToString(inv), p => p.Value);
        json["launches_per_draft"] = t.LaunchesPerDraft;
        json["ops"] = ops?.Select(o => new Dictionary<string, object> { ["op"] = o.Op, ["shape"] = o.Shape, ["us"] = o.Microseconds, ["bytes"] = o.Bytes, ["gb_s"] = o.GigabytesPerSecond }).ToList();
    }

    private static int[] ParseSizes(string text, string option = "batch")
    {
        var sizes = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int size) || size < 1)
                throw new UsageException($"--{option} takes counts ≥ 1 separated by commas (e.g. 1,4,16), got '{text}'");
            sizes.Add(size);
        }
        return [.. sizes];
    }

    private static void Batched(LanguageModel model, IReadOnlyList<string> prompts, int maxTokens, KangarooOptions speculation, int[] sizes,
        EndToEndResult single, TextWriter stdout, TextWriter stderr, Dictionary<string, object?> json, StringWriter markdown, string key)
    {
        string drafting = speculation.Tree is { } t
            ? string.Create(CultureInfo.InvariantCulture, $"token trees (top-k {t.TopK}, threshold {t.Threshold}, budget {t.Budget})")
            : "chains";
        var progress = new Progress<string>(what => stderr.Write($"\rbatched: {what}" + new string(' ', 10)));
        var results = BatchBenchmark.Run(model, prompts, maxTokens, speculation, sizes, single.Outcomes.Select(o => o.VanillaTokenIds).ToList(), progress);
        stderr.Write("\r" + new string(' ', 50) + "\r");
        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine();
        stdout.WriteLine(string.Create(inv, $"batched:      {prompts.Count} prompts × ≤ {maxTokens} new tokens, greedy, N sequences decoded together (tok/s: all new tokens over the whole set's time); Kangaroo {drafting}, batch draft stop {speculation.BatchDraftStop}"));
        markdown.WriteLine();
        markdown.WriteLine(string.Create(inv, $"Batched, Kangaroo {drafting}: {prompts.Count} prompts, up to {maxTokens} new tokens each, greedy, N sequences decoded together (a finished sequence's slot takes the next prompt; drafting ends once fewer than {speculation.BatchDraftStop} of the sequences still draft); tok/s = all new tokens over the whole set's wall time, prompts included:"));
        markdown.WriteLine();
        markdown.WriteLine("| sequences | vanilla tok/s | Kangaroo tok/s | speedup | tokens per round | identical to vanilla alone |");
        markdown.WriteLine("| --- | --- | --- | --- | --- | --- |");
        var rows = new List<Dictionary<string, object?>>();
        foreach (var r in results)
        {
            var s = r.Kangaroo.Speculation!;
            string identical = $"{r.Vanilla.IdenticalPrompts}/{r.Prompts} vanilla, {r.Kangaroo.IdenticalPrompts}/{r.Prompts} Kangaroo";
            stdout.WriteLine(string.Create(inv, $"  {r.Sequences,3} seqs:   vanilla {r.Vanilla.TokensPerSecond,8:F1} tok/s, Kangaroo {r.Kangaroo.TokensPerSecond,8:F1} tok/s ({r.Speedup:F2} ×), {s.MeanAcceptedPerRound:F2} tokens per round; identical: {identical}"));
            markdown.WriteLine(string.Create(inv, $"| {r.Sequences} | {r.Vanilla.TokensPerSecond:F1} | {r.Kangaroo.TokensPerSecond:F1} | {r.Speedup:F2} × | {s.MeanAcceptedPerRound:F2} | {identical} |"));
            rows.Add(new Dictionary<string, object?>
            {
                ["sequences"] = r.Sequences,
                ["batch_draft_stop"] = speculation.BatchDraftStop,
                ["tree"] = TreeJson(speculation.Tree),
                ["prompts"] = r.Prompts,
                ["vanilla_tokens"] = r.Vanilla.NewTokens,
                ["vanilla_seconds"] = r.Vanilla.Elapsed.TotalSeconds,
                ["vanilla_tok_s"] = r.Vanilla.TokensPerSecond,
                ["kangaroo_tokens"] = r.Kangaroo.NewTokens,
                ["kangaroo_seconds"] = r.Kangaroo.Elapsed.TotalSeconds,
                ["kangaroo_tok_s"] = r.Kangaroo.TokensPerSecond,
                ["speedup"] = r.Speedup,
                ["mean_accepted"] = s.MeanAcceptedPerRound,
                ["vanilla_identical_prompts"] = r.Vanilla.IdenticalPrompts,
                ["kangaroo_identical_prompts"] = r.Kangaroo.IdenticalPrompts,
                ["identical_outputs"] = r.Vanilla.IdenticalPrompts == r.Prompts && r.Kangaroo.IdenticalPrompts == r.Prompts,
            });
        }
        json[key] = rows;
    }

    private static Dictionary<string, object>? TreeJson(TokenTreeOptions? tree) => tree is null
        ? null
        : new Dictionary<string, object> { ["top_k"] = tree.TopK, ["threshold"] = tree.Threshold, ["budget"] = tree.Budget };

    private static EndToEndResult EndToEnd(LanguageModel model, IReadOnlyList<string> prompts, int maxTokens,
        KangarooOptions speculation, TextWriter stdout, TextWriter stderr, Dictionary<string, object?> json, StringWriter markdown,
        string? outputsPath, string key)
    {
        speculation.Validate(model.Config.NumLayers);
        var progress = new Progress<int>(done => stderr.Write($"\rend to end: {done}/{prompts.Count} prompts"));
        var r = EndToEndBenchmark.Run(model, prompts, maxTokens, speculation, progress);
        stderr.Write("\r" + new string(' ', 40) + "\r");

        var inv = CultureInfo.InvariantCulture;
        var (v, k, s) = (r.Vanilla, r.Kangaroo, r.Speculation);
        double vanillaRate = v.DecodeTokensPerSecond(r.Prompts), kangarooRate = k.DecodeTokensPerSecond(r.Prompts);
        stdout.WriteLine();
        string drafting = speculation.Tree is { } t
            ? string.Create(inv, $"token tree (top-k {t.TopK}, threshold {t.Threshold}, budget {t.Budget}), confidence stop {speculation.Threshold}")
            : string.Create(inv, $"threshold {speculation.Threshold}");
        stdout.WriteLine(string.Create(inv, $"end to end:   {r.Prompts} prompts × ≤ {maxTokens} new tokens, greedy; exit layer {r.ExitLayer}, draft steps {speculation.MaxDraftSteps}, {drafting}"));
        stdout.WriteLine(string.Create(inv, $"  vanilla:    {v.NewTokens} tokens, decode {vanillaRate:F1} tok/s (with prompts {v.TokensPerSecond:F1} tok/s)"));
        stdout.WriteLine(string.Create(inv, $"  kangaroo:   {k.NewTokens} tokens, decode {kangarooRate:F1} tok/s (with prompts {k.TokensPerSecond:F1} tok/s): {r.Speedup:F2} × vanilla"));
        stdout.WriteLine(string.Create(inv, $"  rounds:     {s.MeanAcceptedPerRound:F2} tokens per round, {s.AcceptanceRate:P1} of {s.Drafted} drafts accepted; draft {s.DraftTime.TotalSeconds:F2} s, verify {s.VerifyTime.TotalSeconds:F2} s"));
        stdout.WriteLine($"  outputs:    {(r.AllIdentical ? "identical" : "DIFFERENT")} on {r.IdenticalOutputs} of {r.Prompts} prompts");

        markdown.WriteLine();
        markdown.WriteLine(string.Create(inv, $"End to end: {r.Prompts} prompts, up to {maxTokens} new tokens each, greedy; exit layer {r.ExitLayer}, γ = {speculation.MaxDraftSteps}, η = {speculation.Threshold}") +
            (speculation.Tree is { } tt ? string.Create(inv, $", token tree (top-K {tt.TopK}, path threshold {tt.Threshold}, budget {tt.Budget})") : "") + ":");
        markdown.WriteLine();
        markdown.WriteLine("| | vanilla | Kangaroo |");
        markdown.WriteLine("| --- | --- | --- |");
        markdown.WriteLine($"| new tokens | {v.NewTokens} | {k.NewTokens} |");
        markdown.WriteLine(string.Create(inv, $"| decode tok/s | {vanillaRate:F1} | {kangarooRate:F1} ({r.Speedup:F2} ×) |"));
        markdown.WriteLine(string.Create(inv, $"| tok/s with prompts | {v.TokensPerSecond:F1} | {k.TokensPerSecond:F1} |"));
        markdown.WriteLine(string.Create(inv, $"| tokens per round | — | {s.MeanAcceptedPerRound:F2} |"));
        markdown.WriteLine(string.Create(inv, $"| drafts accepted | — | {s.AcceptanceRate:P1} of {s.Drafted} |"));
        markdown.WriteLine(string.Create(inv, $"| draft / verify time | — | {s.DraftTime.TotalSeconds:F2} s / {s.VerifyTime.TotalSeconds:F2} s |"));
        markdown.WriteLine($"| identical outputs | {r.IdenticalOutputs} of {r.Prompts} | |");

        json[key] = new Dictionary<string, object?>
        {
            ["tree"] = TreeJson(speculation.Tree),
            ["prompts"] = r.Prompts,
            ["max_new_tokens"] = maxTokens,
            ["exit_layer"] = r.ExitLayer,
            ["draft_steps"] = speculation.MaxDraftSteps,
            ["threshold"] = speculation.Threshold,
            ["vanilla_tokens"] = v.NewTokens,
            ["vanilla_tok_s"] = vanillaRate,
            ["vanilla_tok_s_with_prompts"] = v.TokensPerSecond,
            ["kangaroo_tokens"] = k.NewTokens,
            ["kangaroo_tok_s"] = kangarooRate,
            ["kangaroo_tok_s_with_prompts"] = k.TokensPerSecond,
            ["speedup"] = r.Speedup,
            ["mean_accepted"] = s.MeanAcceptedPerRound,
            ["acceptance_rate"] = s.AcceptanceRate,
            ["rounds"] = s.Rounds,
            ["drafted"] = s.Drafted,
            ["accepted"] = s.Accepted,
            ["draft_seconds"] = s.DraftTime.TotalSeconds,
            ["verify_seconds"] = s.VerifyTime.TotalSeconds,
            ["identical_outputs"] = r.AllIdentical,
            ["identical_prompts"] = r.IdenticalOutputs,
        };
        if (outputsPath is not null)
            File.WriteAllLines(outputsPath, r.Outcomes.Select(o => JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["prompt_ids"] = o.PromptTokenIds,
                ["vanilla_ids"] = o.VanillaTokenIds,
                ["kangaroo_ids"] = o.KangarooTokenIds,
                ["vanilla_decode_seconds"] = o.VanillaDecode.TotalSeconds,
                ["kangaroo_decode_seconds"] = o.KangarooDecode.TotalSeconds,
            })));
        return r;
    }
}
