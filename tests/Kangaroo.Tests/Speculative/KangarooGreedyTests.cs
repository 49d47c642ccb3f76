using Kangaroo.Backends;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Model;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Speculative;

/// <summary>
/// Kangaroo greedy decoding is bit-identical to vanilla greedy: random models and adapters, and pairs made to agree.
/// Every backend runs it (the GPU subclasses skip without a GPU).
/// </summary>
public abstract class KangarooGreedyConformance
{
    protected abstract IComputeBackend CreateBackend();

    /// <summary>Why the backend cannot run here, or null; non-null skips every test.</summary>
    protected virtual string? UnavailableReason => null;

    /// <summary>Whether the backend takes Mistral's sliding window; the random trials of windowed models skip where it does not.</summary>
    protected virtual bool SlidesWindows => true;

    /// <summary>How many random model/adapter/setting combinations the random-trial test runs (the first N of one seeded sequence).</summary>
    protected virtual int RandomTrials => 50;

    private DecoderHarness Harness(TinyModelSpec spec, Dictionary<string, float[]>? modelWeights, Dictionary<string, float[]> adapterWeights,
        int? recordedExitLayer = null)
    {
        if (UnavailableReason is { } reason) Assert.Skip(reason);
        return new DecoderHarness(spec, modelWeights, adapterWeights, recordedExitLayer, CreateBackend());
    }

    /// <summary>
    /// A 6-layer model whose deep layers are near identity (<paramref name="deepScale"/>; 0: identity) with an adapter made
    /// to agree with it after <paramref name="exitLayer"/>: drafts are accepted often, and rejected where the scale says.
    /// </summary>
    private DecoderHarness AgreeingHarness(float deepScale, int exitLayer, int seed)
    {
        var spec = TinyModelSpec.Deep with { Layers = 6, Seed = seed };
        var modelWeights = TinyAdapterFactory.NearIdentityDeepLayers(spec, exitLayer, deepScale);
        var adapterWeights = TinyAdapterFactory.AgreeingWeights(spec, modelWeights, seed: 5, outputGain: deepScale == 0 ? 0 : 0.1);
        return Harness(spec, modelWeights, adapterWeights);
    }

    /// <summary>
    /// A small random model: 2–5 layers, 1/2/4 KV heads, vocabulary 40–119, F32/F16/BF16 (draws in that order); by the
    /// seed, without a draw of its own, one in six a Qwen3 layout (q/k head norms, head_dim 12 where hidden / heads is 8),
    /// one in six Qwen2's (q/k/v biases), one in six Llama with every projection biased (attention_bias, mlp_bias), one in
    /// six Mistral with a sliding window of 6 positions (shorter than most prompts plus their tokens).
    /// </summary>
    private TinyModelSpec? RandomSpec(Random rng, string name, int seed)
    {
        int layers = rng.Next(2, 6);
        int kind = seed % 6;
        bool qwen3 = kind == 2, qwen2 = kind == 4, biased = kind == 5, mistral = kind == 3;
        var spec = new TinyModelSpec
        {
            Name = name + (qwen3 ? "-qwen3" : qwen2 ? "-qwen2" : biased ? "-biases" : mistral ? "-window" : ""), Hidden = 32, Intermediate = 48,
            Layers = layers, Heads = 4, KvHeads = new[] { 1, 2, 4 }[rng.Next(3)], Vocab = rng.Next(40, 120),
            DType = new[] { DType.F32, DType.F16, DType.BF16 }[rng.Next(3)], Seed = seed, QueryKeyNorm = qwen3, HeadDim = qwen3 ? 12 : null,
            QkvBias = qwen2 || biased, OutputBias = biased, MlpBias = biased, SlidingWindow = mistral ? 6 : null,
        };
        return mistral && !SlidesWindows ? null : spec;
    }

    /// <summary>1–11 random token ids.</summary>
    private static int[] RandomPrompt(Random rng, int vocab) => Enumerable.Range(0, rng.Next(1, 12)).Select(_ => rng.Next(vocab)).ToArray();

    [Fact]
    public void RandomModelsAdaptersAndSettingsAlwaysReproduceVanillaGreedy()
    {
        var rng = new Random(2024);
        float[] thresholds = [0f, 1f, 0.6f, 0.3f, 0.9f];
        for (int trial = 0; trial < RandomTrials; trial++)
        {
            var spec = RandomSpec(rng, $"trial{trial}", seed: 1000 + trial);
            if (spec is null) continue;
            int layers = spec.Layers, kvHeads = spec.KvHeads;
            int exitLayer = rng.Next(1, layers);
            var options = TinyAdapterFactory.Options(exitLayer, steps: rng.Next(1, 8), threshold: thresholds[trial % thresholds.Length]);
            int[] prompt = RandomPrompt(rng, spec.Vocab);

            using var h = Harness(spec, null, TinyAdapterFactory.RandomWeights(spec, seed: 7 + trial));
            int[] vanilla = h.Vanilla(prompt, 30);
            var (kangaroo, stats) = h.Kangaroo(prompt, 30, options);
            Assert.True(vanilla.SequenceEqual(kangaroo),
                $"trial {trial} ({spec.Name}: {layers} layers, kv {kvHeads}, {spec.DType}, ℓ={exitLayer}, γ={options.MaxDraftSteps}, η={options.Threshold}): " +
                $"vanilla [{string.Join(' ', vanilla)}] kangaroo [{string.Join(' ', kangaroo)}]");
            Assert.True(stats.Rounds > 0);
        }
    }

    [Theory]
    [InlineData(0.0f, 6, 0f)]      // deep layers exactly identity: every draft accepted, every round "all accepted"
    [InlineData(0.15f, 6, 0f)]     // near identity: long accepted runs and rejections
    [InlineData(0.15f, 4, 0.6f)]   // with the confidence stop
    [InlineData(0.3f, 3, 1f)]      // one draft per round
    public void AgreeingModelAndAdapterRunEveryAcceptanceAndRollbackPath(float deepScale, int steps, float threshold)
    {
        const int exitLayer = 2;
        using var h = AgreeingHarness(deepScale, exitLayer, seed: 77);
        int[] prompt = [1, 50, 51, 52, 7];
        int[] vanilla = h.Vanilla(prompt, 60);
        var (kangaroo, stats) = h.Kangaroo(prompt, 60, TinyAdapterFactory.Options(exitLayer, steps, threshold));

        Assert.Equal(vanilla, kangaroo);
        if (deepScale == 0)
        {
            Assert.Equal(stats.Drafted, stats.Accepted);
            Assert.True(stats.MeanAcceptedPerRound > steps, $"mean accepted per round {stats.MeanAcceptedPerRound}");
        }
        else if (threshold < 1)
        {
            Assert.True(stats.MeanAcceptedPerRound > 1.5, $"mean accepted per round {stats.MeanAcceptedPerRound}");
            Assert.True(stats.Accepted < stats.Drafted, "expected some rejected drafts");
        }
        else
        {
            Assert.Equal(stats.Rounds, stats.Drafted);
        }
    }

    [Fact]
    public void ContextLimitAndShortRequestsCapTheDrafts()
    {
        var spec = TinyModelSpec.Deep with { Layers = 4, Seed = 78 };
        var modelWeights = TinyAdapterFactory.NearIdentityDeepLayers(spec, 1, 0f);
        using var h = Harness(spec, modelWeights, TinyAdapterFactory.AgreeingWeights(spec, modelWeights, 3, 0));
        int[] prompt = [1, 9, 8];
        // Exactly enough room: the cache must hold prompt + tokens − 1 positions and no more.
        var (tokens, _) = h.Kangaroo(prompt, 20, TinyAdapterFactory.Options(1, 6, 0f), contextLength: prompt.Length + 19);
        Assert.Equal(h.Vanilla(prompt, 20), tokens);
    }

    // ---------------------------------------------------------------- several sequences at once

    [Fact]
    public void BatchedSequencesOnRandomModelsEachReproduceVanillaGreedyAlone()
    {
        var rng = new Random(2026);
        for (int trial = 0; trial < Math.Max(4, RandomTrials / 5); trial++)
        {
            var spec = RandomSpec(rng, $"batch{trial}", seed: 3000 + trial);
            if (spec is null) continue;
            var options = TinyAdapterFactory.Options(rng.Next(1, spec.Layers), steps: rng.Next(1, 8), threshold: new[] { 0f, 0.3f, 0.6f, 1f }[trial % 4]);
            // More prompts than slots (finished sequences hand their slot on), of different lengths and wanting different counts.
            int prompts = rng.Next(2, 7), slots = rng.Next(1, prompts + 1);
            int[][] prompt = Enumerable.Range(0, prompts).Select(_ => RandomPrompt(rng, spec.Vocab)).ToArray();
            int[] counts = Enumerable.Range(0, prompts).Select(_ => rng.Next(1, 30)).ToArray();

            using var h = Harness(spec, null, TinyAdapterFactory.RandomWeights(spec, seed: 11 + trial));
            var (vanillaBatch, _) = h.Batch(prompt, counts, null, slots);
            var (kangarooBatch, stats) = h.Batch(prompt, counts, options, slots);
            for (int i = 0; i < prompts; i++)
            {
                int[] alone = h.Vanilla(prompt[i], counts[i]);
                string what = $"trial {trial}, prompt {i} of {prompts} in {slots} slots (ℓ={options.ExitLayer}, γ={options.MaxDraftSteps}, η={options.Threshold})";
                Assert.True(alone.SequenceEqual(vanillaBatch[i]), $"{what}: batched vanilla [{string.Join(' ', vanillaBatch[i])}] vs alone [{string.Join(' ', alone)}]");
                Assert.True(alone.SequenceEqual(kangarooBatch[i]), $"{what}: batched Kangaroo [{string.Join(' ', kangarooBatch[i])}] vs vanilla [{string.Join(' ', alone)}]");
                Assert.Equal(counts[i], stats[i]!.Emitted + 1);   // the first token comes from the prompt's pass
            }
        }
    }

    [Theory]
    [InlineData(0.0f, 6, 0f)]      // every draft accepted: every sequence's adapter catches up each round
    [InlineData(0.15f, 6, 0.6f)]   // rejections and confidence stops: sequences draft different lengths in one round
    public void BatchedSequencesOnAgreeingModelsDraftDifferentLengthsAndMatchVanilla(float deepScale, int steps, float threshold)
    {
        const int exitLayer = 2;
        using var h = AgreeingHarness(deepScale, exitLayer, seed: 79);
        int[][] prompts = [[1, 50, 51, 52, 7], [3, 4], [9, 80, 81, 82, 83, 84, 2, 40], [5], [60, 61, 62]];
        int[] counts = [50, 37, 44, 3, 60];
        var options = TinyAdapterFactory.Options(exitLayer, steps, threshold);
        // Every sequence drafting until its own stop: each drafts and accepts exactly what it does alone.
        var (batch, stats) = h.Batch(prompts, counts, options with { BatchDraftStop = 0 }, maxSequences: 4);
        // The strictest stop: drafting ends for all as soon as one sequence stops (its confidence, its room): output unchanged.
        var (cut, cutStats) = h.Batch(prompts, counts, options with { BatchDraftStop = 1f }, maxSequences: 4);
        for (int i = 0; i < prompts.Length; i++)
        {
            int[] vanilla = h.Vanilla(prompts[i], counts[i]);
            Assert.Equal(vanilla, batch[i]);
            Assert.Equal(vanilla, cut[i]);
            var (_, alone) = h.Kangaroo(prompts[i], counts[i], options);
            Assert.Equal((alone.Rounds, alone.Drafted, alone.Accepted), (stats[i]!.Rounds, stats[i]!.Drafted, stats[i]!.Accepted));
        }
        if (deepScale == 0) Assert.All(stats, st => Assert.Equal(st!.Drafted, st.Accepted));
        else Assert.Contains(stats, st => st!.Accepted < st.Drafted);
        // The cut never adds drafts; with η = 0 every sequence drafts to its limit, which is shorter near its token count
        // than the others': there the cut shows as fewer drafts in all.
        int cutDrafts = cutStats.Sum(st => st!.Drafted), fullDrafts = stats.Sum(st => st!.Drafted);
        Assert.True(threshold == 0 ? cutDrafts < fullDrafts : cutDrafts <= fullDrafts, $"drafts with the cut {cutDrafts}, without {fullDrafts}");
    }

    [Fact]
    public void BatchedSamplingDrawsWhatEachSequenceDrawsAlone()
    {
        var spec = TinyModelSpec.Deep with { Layers = 4, Seed = 80 };
        var modelWeights = TinyAdapterFactory.NearIdentityDeepLayers(spec, 1, 0.15f);
        using var h = Harness(spec, modelWeights, TinyAdapterFactory.AgreeingWeights(spec, modelWeights, 3, 0.1));
        int[][] prompts = [[1, 9, 8], [4, 4, 4, 4], [7], [30, 31]];
        int[] counts = [25, 30, 12, 28];
        var sampling = new GenerationOptions { Temperature = 0.9f, TopK = 20, TopP = 0.95f };
        // Every sequence drafting until its own stop, so each makes the draws it makes alone.
        var kangaroo = TinyAdapterFactory.Options(1, 4, 0.3f) with { BatchDraftStop = 0 };
        var (vanillaBatch, _) = h.Batch(prompts, counts, null, maxSequences: 3, sampling, seed: 40);
        var (kangarooBatch, _) = h.Batch(prompts, counts, kangaroo, maxSequences: 3, sampling, seed: 40);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(h.Vanilla(prompts[i], counts[i], sampling, seed: 40 + (ulong)i), vanillaBatch[i]);
            Assert.Equal(h.Kangaroo(prompts[i], counts[i], kangaroo, sampling, seed: 40 + (ulong)i).Tokens, kangarooBatch[i]);
        }
    }

    [Fact]
    public void BatchedSequencesRespectTheContextLimit()
    {
        var spec = TinyModelSpec.Deep with { Layers = 4, Seed = 81 };
        var modelWeights = TinyAdapterFactory.NearIdentityDeepLayers(spec, 1, 0f);
        using var h = Harness(spec, modelWeights, TinyAdapterFactory.AgreeingWeights(spec, modelWeights, 3, 0));
        int[][] prompts = [[1, 9, 8], [2, 3, 4, 5, 6, 7]];
        // Each sequence gets exactly its room: prompt + tokens − 1 positions of a 24-position region.
        int[] counts = [22, 19];
        var (batch, _) = h.Batch(prompts, counts, TinyAdapterFactory.Options(1, 6, 0f), maxSequences: 2, contextLength: 24);
        Assert.Equal(h.Vanilla(prompts[0], 22), batch[0]);
        Assert.Equal(h.Vanilla(prompts[1], 19), batch[1]);
        Assert.Throws<InvalidRequestException>(() => h.Batch([[1, 2, 3]], [2], TinyAdapterFactory.Options(1, 6, 0f), maxSequences: 1, contextLength: 2));
    }

    // ---------------------------------------------------------------- token trees

    [Fact]
    public void TokenTreesOnRandomModelsAlwaysReproduceVanillaGreedy()
    {
        var rng = new Random(2025);
        for (int trial = 0; trial < Math.Max(3, RandomTrials / 3); trial++)
        {
            var spec = RandomSpec(rng, $"tree{trial}", seed: 3000 + trial);
            if (spec is null) continue;
            int layers = spec.Layers;
            int exitLayer = rng.Next(1, layers);
            var tree = new TokenTreeOptions { TopK = rng.Next(1, 6), Threshold = new[] { 0f, 0.05f, 0.4f }[trial % 3], Budget = rng.Next(1, 20) };
            var options = TinyAdapterFactory.Options(exitLayer, steps: rng.Next(1, 7), threshold: 0.6f) with { Tree = tree };
            int[] prompt = RandomPrompt(rng, spec.Vocab);

            using var h = Harness(spec, null, TinyAdapterFactory.RandomWeights(spec, seed: 11 + trial));
            int[] vanilla = h.Vanilla(prompt, 30);
            var (kangaroo, stats) = h.Kangaroo(prompt, 30, options);
            Assert.True(vanilla.SequenceEqual(kangaroo),
                $"tree trial {trial} ({layers} layers, {spec.DType}, ℓ={exitLayer}, γ={options.MaxDraftSteps}, {tree}): " +
                $"vanilla [{string.Join(' ', vanilla)}] tree [{string.Join(' ', kangaroo)}]");
            Assert.True(stats.Rounds > 0);
        }
    }

    [Theory]
    [InlineData(0.0f, 6, 3, 0f, 12, 0f)]       // deep layers identity, every node expands: long accepted runs, 3 nodes per level
    [InlineData(0.15f, 6, 4, 0f, 24, 0f)]      // near identity: branches accepted off the best path, rejections, cache packing
    [InlineData(0.15f, 4, 10, 0.1f, 16, 0.6f)] // the defaults: expansion gated by the chain's η, alternatives by path probability
    [InlineData(0.3f, 3, 2, 0.05f, 1, 0f)]     // a budget of one node: chain-like
    public void TokenTreesOnAgreeingModelsAcceptPathsAndMatchVanilla(float deepScale, int steps, int topK, float threshold, int budget, float gate)
    {
        const int exitLayer = 2;
        using var h = AgreeingHarness(deepScale, exitLayer, seed: 79);
        int[] prompt = [1, 50, 51, 52, 7];
        int[] vanilla = h.Vanilla(prompt, 60);
        var tree = new TokenTreeOptions { TopK = topK, Threshold = threshold, Budget = budget };
        var (tokens, stats) = h.Kangaroo(prompt, 60, TinyAdapterFactory.Options(exitLayer, steps, gate) with { Tree = tree });

        Assert.Equal(vanilla, tokens);
        Assert.True(stats.Drafted <= stats.Rounds * budget);
        // Identity deep layers: the best path is always right and a level holds at most top-K nodes, so it runs this deep.
        if (deepScale == 0) Assert.True(stats.MeanAcceptedPerRound > Math.Min(steps, budget / topK), $"mean accepted per round {stats.MeanAcceptedPerRound}");
        else Assert.True(stats.MeanAcceptedPerRound > 1.2, $"mean accepted per round {stats.MeanAcceptedPerRound}");
    }

    [Fact]
    public void TokenTreesRespectTheContextLimit()
    {
        var spec = TinyModelSpec.Deep with { Layers = 4, Seed = 80 };
        var modelWeights = TinyAdapterFactory.NearIdentityDeepLayers(spec, 1, 0f);
        using var h = Harness(spec, modelWeights, TinyAdapterFactory.AgreeingWeights(spec, modelWeights, 3, 0));
        int[] prompt = [1, 9, 8];
        var options = TinyAdapterFactory.Options(1, 6, 0f) with { Tree = new TokenTreeOptions { TopK = 4, Threshold = 0f, Budget = 24 } };
        var (tokens, _) = h.Kangaroo(prompt, 20, options, contextLength: prompt.Length + 19);
        Assert.Equal(h.Vanilla(prompt, 20), tokens);
    }

    // ---------------------------------------------------------------- token trees of several sequences at once

    [Fact]
    public void BatchedTokenTreesOnRandomModelsEachReproduceVanillaGreedyAlone()
    {
        var rng = new Random(2027);
        for (int trial = 0; trial < Math.Max(3, RandomTrials / 5); trial++)
        {
            var spec = RandomSpec(rng, $"batchtree{trial}", seed: 4000 + trial);
            if (spec is null) continue;
            var tree = new TokenTreeOptions { TopK = rng.Next(1, 5), Threshold = new[] { 0f, 0.05f, 0.4f }[trial % 3], Budget = rng.Next(1, 16) };
            var options = TinyAdapterFactory.Options(rng.Next(1, spec.Layers), steps: rng.Next(1, 7), threshold: 0.6f) with { Tree = tree };
            int prompts = rng.Next(2, 7), slots = rng.Next(1, prompts + 1);
            int[][] prompt = Enumerable.Range(0, prompts).Select(_ => RandomPrompt(rng, spec.Vocab)).ToArray();
            int[] counts = Enumerable.Range(0, prompts).Select(_ => rng.Next(1, 30)).ToArray();

            using var h = Harness(spec, null, TinyAdapterFactory.RandomWeights(spec, seed: 21 + trial));
            var (batch, stats) = h.Batch(prompt, counts, options, slots);
            for (int i = 0; i < prompts; i++)
            {
                int[] alone = h.Vanilla(prompt[i], counts[i]);
                Assert.True(alone.SequenceEqual(batch[i]),
                    $"trial {trial}, prompt {i} of {prompts} in {slots} slots ({tree}): batched tree [{string.Join(' ', batch[i])}] vs vanilla [{string.Join(' ', alone)}]");
                Assert.Equal(counts[i], stats[i]!.Emitted + 1);
            }
        }
    }

    [Theory]
    [InlineData(0.0f, 6, 3, 0f, 12, 0f)]       // every node expands, long accepted runs
    [InlineData(0.15f, 6, 4, 0f, 24, 0f)]      // branches accepted off the best path: both caches packed per sequence
    [InlineData(0.15f, 4, 10, 0.1f, 16, 0.6f)] // the defaults
    public void BatchedTokenTreesOnAgreeingModelsDraftWhatEachDraftsAlone(float deepScale, int steps, int topK, float threshold, int budget, float gate)
    {
        const int exitLayer = 2;
        using var h = AgreeingHarness(deepScale, exitLayer, seed: 79);
        int[][] prompts = [[1, 50, 51, 52, 7], [3, 4], [9, 80, 81, 82, 83, 84, 2, 40], [5], [60, 61, 62]];
        // Shorter where the backend is slow here (the ILGPU CPU accelerator): still several rounds of every sequence.
        int[] counts = RandomTrials >= 50 ? [50, 37, 44, 3, 60] : [20, 15, 18, 3, 24];
        var options = TinyAdapterFactory.Options(exitLayer, steps, gate) with { Tree = new TokenTreeOptions { TopK = topK, Threshold = threshold, Budget = budget } };
        var (batch, stats) = h.Batch(prompts, counts, options, maxSequences: 4);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(h.Vanilla(prompts[i], counts[i]), batch[i]);
            // A tree grows from its own sequence's rows only: the same tree as alone (in a region as large), round for round.
            var (_, alone) = h.Kangaroo(prompts[i], counts[i], options, contextLength: prompts.Max(p => p.Length) + counts.Max() + 1);
            Assert.Equal((alone.Rounds, alone.Drafted, alone.Accepted), (stats[i]!.Rounds, stats[i]!.Drafted, stats[i]!.Accepted));
        }
        Assert.Contains(stats, st => st!.MeanAcceptedPerRound > 1.5);
    }

    [Fact]
    public void RecordedExitLayerIsUsedWhenNoneIsAsked()
    {
        var spec = TinyModelSpec.Gqa with { Layers = 3 };
        using var h = Harness(spec, null, TinyAdapterFactory.RandomWeights(spec, 1), recordedExitLayer: 1);
        Assert.Equal(1, h.Adapter.RecordedExitLayer);
        using var decoder = h.Scheduler(new KangarooOptions(), 1, 32);
        Assert.Equal(1, decoder.ExitLayer);
    }
}

public sealed class KangarooGreedyTests : KangarooGreedyConformance
{
    protected override IComputeBackend CreateBackend() => new CpuBackend();
}
