using System.Text.Json;
using Kangaroo.Generation;
using Kangaroo.Speculative;

namespace Kangaroo.Diagnostics;

/// <summary>Totals of one decoding mode over a prompt set.</summary>
/// <param name="PromptTokens">Prompt tokens over all prompts.</param>
/// <param name="NewTokens">Generated tokens over all prompts.</param>
/// <param name="Prefill">Time spent on prompts (up to the first new token).</param>
/// <param name="Decode">Time spent on the tokens after the first.</param>
public sealed record ModeTotals(int PromptTokens, int NewTokens, TimeSpan Prefill, TimeSpan Decode)
{
    /// <summary>Decode throughput: tokens after the first of each prompt, over decode time (what speculation speeds up).</summary>
    public double DecodeTokensPerSecond(int prompts) => Decode > TimeSpan.Zero ? (NewTokens - prompts) / Decode.TotalSeconds : 0;

    /// <summary>Every new token over all the time, prompts included.</summary>
    public double TokensPerSecond => Prefill + Decode > TimeSpan.Zero ? NewTokens / (Prefill + Decode).TotalSeconds : 0;
}

/// <summary>The tokens one prompt gave in each mode (what peers on the same weights are compared against).</summary>
/// <param name="PromptTokenIds">The prompt as the model saw it (BOS included when the tokenizer adds one).</param>
/// <param name="VanillaTokenIds">Vanilla greedy's new tokens (an EOS that ended the prompt is not among them).</param>
/// <param name="KangarooTokenIds">Kangaroo greedy's new tokens.</param>
/// <param name="VanillaDecode">Vanilla's time after the first new token.</param>
/// <param name="KangarooDecode">Kangaroo's time after the first new token.</param>
public sealed record PromptOutcome(IReadOnlyList<int> PromptTokenIds, IReadOnlyList<int> VanillaTokenIds, IReadOnlyList<int> KangarooTokenIds,
    TimeSpan VanillaDecode, TimeSpan KangarooDecode)
{
    public bool Identical => VanillaTokenIds.SequenceEqual(KangarooTokenIds);
}

/// <summary>Vanilla greedy against Kangaroo greedy on the same prompts: throughput, acceptance, and whether the outputs agree.</summary>
public sealed record EndToEndResult(
    int Prompts,
    int MaxNewTokens,
    KangarooOptions Options,
    int ExitLayer,
    ModeTotals Vanilla,
    ModeTotals Kangaroo,
    SpeculativeStats Speculation,
    IReadOnlyList<PromptOutcome> Outcomes)
{
    /// <summary>Prompts on which Kangaroo gave exactly vanilla's tokens.</summary>
    public int IdenticalOutputs => Outcomes.Count(o => o.Identical);

    /// <summary>Kangaroo's decode tok/s over vanilla's.</summary>
    public double Speedup => Vanilla.DecodeTokensPerSecond(Prompts) > 0 ? Kangaroo.DecodeTokensPerSecond(Prompts) / Vanilla.DecodeTokensPerSecond(Prompts) : 0;

    /// <summary>True when every prompt gave Kangaroo exactly vanilla's tokens (greedy decoding is lossless).</summary>
    public bool AllIdentical => IdenticalOutputs == Prompts;
}

/// <summary>
/// The end-to-end comparison of <c>kangaroo bench --prompts</c>: each prompt is generated greedily twice — plain, then
/// with Kangaroo — in one reused session per mode (so kernels, graphs and caches are warm after a first untimed prompt).
/// </summary>
public static class EndToEndBenchmark
{
    /// <summary>Reads the <c>"prompt"</c> field of each line of a JSON-lines file (bench/data/prompts.jsonl).</summary>
    public static IReadOnlyList<string> ReadPrompts(string path, int? count = null)
    {
        if (!File.Exists(path)) throw new InvalidRequestException($"prompts file {path} not found");
        var prompts = new List<string>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var record = JsonDocument.Parse(line);
                if (record.RootElement.ValueKind != JsonValueKind.Object || !record.RootElement.TryGetProperty("prompt", out var prompt) ||
                    prompt.ValueKind != JsonValueKind.String)
                    throw new InvalidRequestException($"{path}, line {lineNumber}: expected an object with a \"prompt\" string");
                prompts.Add(prompt.GetString()!);
            }
            catch (JsonException e)
            {
                throw new InvalidRequestException($"{path}, line {lineNumber}: not JSON ({e.Message})");
            }
            if (prompts.Count == count) break;
        }
        if (prompts.Count == 0) throw new InvalidRequestException($"{path} holds no prompts");
        return prompts;
    }

    public static EndToEndResult Run(LanguageModel model, IReadOnlyList<string> prompts, int maxNewTokens, KangarooOptions options,
        IProgress<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        if (model.Adapter is null) throw new InvalidRequestException("the end-to-end comparison needs a Kangaroo adapter");
        if (prompts.Count == 0) throw new InvalidRequestException("no prompts");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxNewTokens, 1);

        var plain = new GenerationOptions { MaxNewTokens = maxNewTokens };
        var speculative = plain with { Speculation = options };
        using var vanillaSession = model.CreateSession();
        using var kangarooSession = model.CreateSession();
        // Untimed first runs: JIT, kernel compilation, graph capture, scratch sizing.
        vanillaSession.Generate(prompts[0], plain);
        kangarooSession.Generate(prompts[0], speculative);

        ModeTotals vanilla = new(0, 0, TimeSpan.Zero, TimeSpan.Zero), kangaroo = vanilla;
        var stats = new SpeculativeStats();
        var outcomes = new List<PromptOutcome>(prompts.Count);
        int exitLayer = options.ExitLayer ?? model.Adapter.RecordedExitLayer ?? KangarooOptions.DefaultExitLayer;
        for (int i = 0; i < prompts.Count; i++)
        {
            var v = vanillaSession.Generate(prompts[i], plain);
            var k = kangarooSession.Generate(prompts[i], speculative);
            vanilla = Add(vanilla, v);
            kangaroo = Add(kangaroo, k);
            stats += k.Speculation!;
            outcomes.Add(new PromptOutcome(v.PromptTokenIds, v.TokenIds, k.TokenIds, v.Timings.Decode, k.Timings.Decode));
            progress?.Report(i + 1);
        }
        return new EndToEndResult(prompts.Count, maxNewTokens, options, exitLayer, vanilla, kangaroo, stats, outcomes);
    }

    private static ModeTotals Add(ModeTotals totals, GenerationResult r) => new(
        totals.PromptTokens + r.Timings.PromptTokens, totals.NewTokens + r.Timings.DecodedTokens,
        totals.Prefill + r.Timings.Prefill, totals.Decode + r.Timings.Decode);
}
