using Kangaroo.Generation;
using Kangaroo.Sampling;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Speculative;

/// <summary>
/// Speculative sampling is lossless: the joint distribution of the first three sampled tokens equals the target
/// model's own sampling distribution (computed exactly here), and a deliberately wrong acceptance rule is caught.
/// </summary>
public sealed class KangarooSamplingTests : IDisposable
{
    private const int Vocab = 8;
    private const int Runs = 20_000;
    private static readonly int[] Prompt = [1, 5, 3];
    private readonly DecoderHarness _h;

    public KangarooSamplingTests()
    {
        var spec = new TinyModelSpec { Name = "sampling", Hidden = 16, Intermediate = 32, Layers = 3, Heads = 2, KvHeads = 1, Vocab = Vocab, Seed = 404 };
        // A random adapter disagrees with the model often: both acceptance and residual resampling run a lot.
        _h = new DecoderHarness(spec, null, TinyAdapterFactory.RandomWeights(spec, seed: 9));
    }

    public void Dispose() => _h.Dispose();

    public static TheoryData<float, int, float> Settings => new()
    {
        { 1.0f, 0, 1.0f },
        { 0.8f, 6, 0.9f },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void FirstThreeTokensFollowTheTargetDistribution(float temperature, int topK, float topP)
    {
        var options = new GenerationOptions { Temperature = temperature, TopK = topK, TopP = topP };
        double[] exact = ExactJointDistribution(options);
        var kangaroo = new KangarooOptions { ExitLayer = 1, MaxDraftSteps = 3, Threshold = 0f };

        var (statistic, dof, p) = ChiSquare.Test(Count(kangaroo, options, wrongRule: false), exact);
        Assert.True(p > 0.001, $"Kangaroo sampling: chi-square {statistic:F1} with {dof} degrees of freedom, p = {p:E2}");

        // The test itself can tell distributions apart: vanilla sampling passes it too, a wrong rule does not.
        var vanilla = new long[exact.Length];
        using var vanillaDecoder = _h.Scheduler(null, 1, Prompt.Length + 8);
        for (int run = 0; run < Runs; run++)
            vanilla[Index(DecoderHarness.Decode(vanillaDecoder, Prompt, 3, options, (ulong)run))]++;
        Assert.True(ChiSquare.Test(vanilla, exact).PValue > 0.001, "vanilla sampling failed its own distribution test");
    }

    /// <summary>Token trees: children drawn i.i.d. from the adapter, recursive rejection sampling — the same distribution.</summary>
    [Theory]
    [MemberData(nameof(Settings))]
    public void TokenTreeSamplingFollowsTheTargetDistribution(float temperature, int topK, float topP)
    {
        var options = new GenerationOptions { Temperature = temperature, TopK = topK, TopP = topP };
        double[] exact = ExactJointDistribution(options);
        var (statistic, dof, p) = ChiSquare.Test(Count(TreeOptions, options, wrongRule: false), exact);
        Assert.True(p > 0.001, $"token-tree sampling: chi-square {statistic:F1} with {dof} degrees of freedom, p = {p:E2}");
    }

    /// <summary>Token trees of several sequences verified in one pass: each sequence's tokens still follow the target's distribution.</summary>
    [Fact]
    public void TokenTreeSamplingInABatchFollowsTheTargetDistribution()
    {
        var options = new GenerationOptions { Temperature = 0.8f, TopK = 6, TopP = 0.9f };
        const int slots = 3;
        var counts = new long[Vocab * Vocab * Vocab];
        using var decoder = _h.Scheduler(TreeOptions, slots, Prompt.Length + 8);
        int[][] prompts = Enumerable.Repeat(Prompt, slots).ToArray();
        int[] wanted = Enumerable.Repeat(3, slots).ToArray();
        for (int run = 0; run < Runs / slots; run++)
        {
            var (tokens, _) = DecoderHarness.Batch(decoder, prompts, wanted, options, seed: (ulong)(run * slots));
            foreach (int[] sequence in tokens) counts[Index(sequence)]++;
        }
        var (statistic, dof, p) = ChiSquare.Test(counts, ExactJointDistribution(options));
        Assert.True(p > 0.001, $"batched token-tree sampling: chi-square {statistic:F1} with {dof} degrees of freedom, p = {p:E2}");
    }

    [Fact]
    public void AWrongTreeAcceptanceRuleFailsTheSameTest()
    {
        var options = new GenerationOptions { Temperature = 1.0f };
        var (statistic, dof, p) = ChiSquare.Test(Count(TreeOptions, options, wrongRule: true), ExactJointDistribution(options));
        Assert.True(p < 1e-6, $"accept-always tree rule went unnoticed: chi-square {statistic:F1}, {dof} dof, p = {p:E2}");
    }

    // Three draws per node, up to 8 nodes, every node expanded (η 0): repeats, siblings and deep paths all occur.
    private static readonly KangarooOptions TreeOptions = new()
    {
        ExitLayer = 1, MaxDraftSteps = 3, Threshold = 0f, Tree = new TokenTreeOptions { TopK = 3, Threshold = 0f, Budget = 8 },
    };

    [Fact]
    public void AWrongAcceptanceRuleFailsTheSameTest()
    {
        var options = new GenerationOptions { Temperature = 1.0f };
        double[] exact = ExactJointDistribution(options);
        var kangaroo = new KangarooOptions { ExitLayer = 1, MaxDraftSteps = 3, Threshold = 0f };
        var (statistic, dof, p) = ChiSquare.Test(Count(kangaroo, options, wrongRule: true), exact);
        Assert.True(p < 1e-6, $"accept-always rule went unnoticed: chi-square {statistic:F1}, {dof} dof, p = {p:E2}");
    }

    private long[] Count(KangarooOptions kangaroo, GenerationOptions options, bool wrongRule)
    {
        var counts = new long[Vocab * Vocab * Vocab];
        using var decoder = _h.Scheduler(kangaroo, 1, Prompt.Length + 8);
        // Accepting every draft outputs the draft's distribution q instead of p.
        if (wrongRule) decoder.Verifier.AcceptanceProbability = static (_, _) => 1.0;
        long drafted = 0, accepted = 0;
        for (int run = 0; run < Runs; run++)
        {
            counts[Index(DecoderHarness.Decode(decoder, Prompt, 3, options, (ulong)run))]++;
            drafted += decoder.Stats(0)!.Drafted;
            accepted += decoder.Stats(0)!.Accepted;
        }
        // Both branches of the rule must run many times: acceptances and residual draws.
        if (!wrongRule) Assert.InRange(accepted, drafted / 10, drafted * 9 / 10);
        return counts;
    }

    private static int Index(int[] tokens) => (tokens[0] * Vocab + tokens[1]) * Vocab + tokens[2];

    /// <summary>P(t1, t2, t3) = p(t1 | prompt) · p(t2 | prompt, t1) · p(t3 | prompt, t1, t2), with p the processed sampling distribution.</summary>
    private double[] ExactJointDistribution(GenerationOptions options)
    {
        var sampler = new TokenSampler(Vocab);
        double[] Next(int[] sequence)
        {
            float[] logits = _h.Model.EvaluateLogits(sequence);
            var p = new float[Vocab];
            sampler.ComputeDistribution(logits.AsSpan((sequence.Length - 1) * Vocab, Vocab), options.Sampling, p);
            return p.Select(x => (double)x).ToArray();
        }
        var joint = new double[Vocab * Vocab * Vocab];
        double[] p1 = Next(Prompt);
        for (int a = 0; a < Vocab; a++)
        {
            if (p1[a] == 0) continue;
            double[] p2 = Next([.. Prompt, a]);
            for (int b = 0; b < Vocab; b++)
            {
                if (p2[b] == 0) continue;
                double[] p3 = Next([.. Prompt, a, b]);
                for (int c = 0; c < Vocab; c++) joint[(a * Vocab + b) * Vocab + c] = p1[a] * p2[b] * p3[c];
            }
        }
        return joint;
    }
}
