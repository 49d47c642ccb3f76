using System.Diagnostics;
using Kangaroo.Generation;
using Kangaroo.Speculative;

namespace Kangaroo.Diagnostics;

/// <summary>One decoding mode's throughput with a number of sequences decoded together.</summary>
/// <param name="NewTokens">New tokens over all prompts.</param>
/// <param name="Elapsed">Wall time of the whole prompt set (prompts processed, slots handed on, every round).</param>
/// <param name="Speculation">Kangaroo's figures summed over the prompts; null for vanilla.</param>
/// <param name="IdenticalPrompts">Prompts whose tokens equal the reference (vanilla greedy, one sequence at a time).</param>
public sealed record BatchModeResult(int NewTokens, TimeSpan Elapsed, SpeculativeStats? Speculation, int IdenticalPrompts)
{
    public double TokensPerSecond => Elapsed > TimeSpan.Zero ? NewTokens / Elapsed.TotalSeconds : 0;
}

/// <summary>Vanilla and Kangaroo greedy with <see cref="Sequences"/> sequences in flight.</summary>
public sealed record BatchThroughput(int Sequences, int Prompts, BatchModeResult Vanilla, BatchModeResult Kangaroo)
{
    public double Speedup => Vanilla.TokensPerSecond > 0 ? Kangaroo.TokensPerSecond / Vanilla.TokensPerSecond : 0;
}

/// <summary>
/// The batched comparison of <c>kangaroo bench --batch</c>: the whole prompt set through a <see cref="BatchSession"/> of
/// each size, vanilla and Kangaroo greedy. Each is run twice and the second run timed, so every pass shape has been
/// compiled and recorded before the clock starts.
/// </summary>
public static class BatchBenchmark
{
    /// <param name="reference">Each prompt's tokens from vanilla greedy decoded alone (outputs are checked against them).</param>
    public static IReadOnlyList<BatchThroughput> Run(LanguageModel model, IReadOnlyList<string> prompts, int maxNewTokens, KangarooOptions options,
        IReadOnlyList<int> sizes, IReadOnlyList<IReadOnlyList<int>> reference, IProgress<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Adapter is null) throw new InvalidRequestException("the batched comparison needs a Kangaroo adapter");
        if (prompts.Count == 0) throw new InvalidRequestException("no prompts");
        if (reference.Count != prompts.Count) throw new ArgumentException($"{reference.Count} reference outputs for {prompts.Count} prompts", nameof(reference));
        var plain = new GenerationOptions { MaxNewTokens = maxNewTokens };
        var results = new List<BatchThroughput>(sizes.Count);
        foreach (int size in sizes)
        {
            if (size < 1) throw new InvalidRequestException($"a batch needs at least one sequence, got {size}");
            using var session = model.CreateBatchSession(size);
            progress?.Report($"{size} sequences: vanilla");
            var vanilla = Measure(session, prompts, plain, reference);
            progress?.Report($"{size} sequences: Kangaroo");
            var kangaroo = Measure(session, prompts, plain with { Speculation = options }, reference);
            results.Add(new BatchThroughput(size, prompts.Count, vanilla, kangaroo));
        }
        return results;
    }

    private static BatchModeResult Measure(BatchSession session, IReadOnlyList<string> prompts, GenerationOptions options,
        IReadOnlyList<IReadOnlyList<int>> reference)
    {
        session.Generate(prompts, options);   // untimed: kernels, recorded passes and scratch for every shape this set needs
        var clock = Stopwatch.StartNew();
        var results = session.Generate(prompts, options);
        clock.Stop();
        SpeculativeStats? stats = options.Speculation is null ? null : new SpeculativeStats();
        int tokens = 0, identical = 0;
        for (int i = 0; i < results.Count; i++)
        {
            tokens += results[i].TokenIds.Count;
            if (stats is not null) stats += results[i].Speculation!;
            if (results[i].TokenIds.SequenceEqual(reference[i])) identical++;
        }
        return new BatchModeResult(tokens, clock.Elapsed, stats, identical);
    }

}
