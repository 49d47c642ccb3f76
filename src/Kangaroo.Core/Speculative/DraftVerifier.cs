using Kangaroo.Generation;

namespace Kangaroo.Speculative;

/// <summary>
/// Decides which drafted tokens to keep, given the target's logits for every verified row. Lossless both ways:
/// greedy keeps the longest prefix equal to the target's argmax; sampling uses speculative sampling (accept draft x
/// with probability min(1, p(x)/q(x)), else draw from normalize(max(0, p − q))), so the output is distributed exactly
/// as the target's own sampling. Temperature / top-k / top-p shape p and q the same way (<see cref="TokenSampler"/>).
/// </summary>
public sealed class DraftVerifier
{
    private readonly TokenSampler _sampler;
    private readonly float[] _target;
    private readonly float[] _residual;

    /// <summary>
    /// The probability of accepting a draft given p(x) (target) and q(x) (draft): min(1, p/q). Replaceable only so that
    /// tests can prove the distribution test catches a wrong rule.
    /// </summary>
    internal Func<double, double, double> AcceptanceProbability { get; set; } = static (p, q) => q > 0 ? Math.Min(1.0, p / q) : 0;

    public DraftVerifier(int vocabSize)
    {
        _sampler = new TokenSampler(vocabSize);
        _target = new float[vocabSize];
        _residual = new float[vocabSize];
    }

    /// <summary>
    /// Greedy verification. <paramref name="targetChoices"/>[i] is the target's argmax after row i (row 0 = the last
    /// accepted token, row i = draft i). Writes the accepted drafts plus the target's own next token to
    /// <paramref name="output"/> and returns the number of drafts accepted.
    /// </summary>
    public static int VerifyGreedy(ReadOnlySpan<int> drafts, ReadOnlySpan<int> targetChoices, Span<int> output)
    {
        int accepted = 0;
        while (accepted < drafts.Length && drafts[accepted] == targetChoices[accepted])
        {
            output[accepted] = drafts[accepted];
            accepted++;
        }
        output[accepted] = targetChoices[accepted];
        return accepted;
    }

    /// <summary>
    /// Speculative sampling. <paramref name="targetLogits"/> holds drafts.Length + 1 rows of logits; row i of
    /// <paramref name="draftDistributions"/> is the distribution draft i was sampled from. Returns the number of
    /// drafts accepted; output holds them plus one token drawn from the target (residual or bonus).
    /// </summary>
    public int VerifySampling(ReadOnlySpan<int> drafts, ReadOnlySpan<float> draftDistributions, ReadOnlySpan<float> targetLogits,
        GenerationOptions options, DeterministicRandom random, Span<int> output)
    {
        int vocab = _sampler.VocabSize;
        for (int i = 0; i < drafts.Length; i++)
        {
            _sampler.ComputeDistribution(targetLogits.Slice(i * vocab, vocab), options, _target);
            var q = draftDistributions.Slice(i * vocab, vocab);
            int x = drafts[i];
            double acceptance = AcceptanceProbability(_target[x], q[x]);
            if (random.NextDouble() < acceptance)
            {
                output[i] = x;
                continue;
            }
            output[i] = SampleResidual(q, random);
            return i;
        }
        _sampler.ComputeDistribution(targetLogits.Slice(drafts.Length * vocab, vocab), options, _target);
        output[drafts.Length] = TokenSampler.SampleFrom(_target, random);
        return drafts.Length;
    }

    /// <summary>
    /// One node of a token tree, sampling (recursive rejection sampling, as SpecInfer's multi-step speculative sampling):
    /// <paramref name="draws"/> were drawn i.i.d. from the draft distribution <paramref name="q"/> (repeats allowed).
    /// Draw i is accepted with probability min(1, pᵢ(x)/q(x)); each rejection replaces pᵢ by normalize(max(0, pᵢ − q)).
    /// Returns the index of the accepted draw, or −1 with <paramref name="next"/> drawn from the last residual — so the
    /// token that follows the node is distributed exactly as the target's p (computed from <paramref name="targetLogits"/>).
    /// </summary>
    public int VerifyTreeNode(ReadOnlySpan<float> targetLogits, ReadOnlySpan<float> q, ReadOnlySpan<int> draws, GenerationOptions options,
        DeterministicRandom random, out int next)
    {
        _sampler.ComputeDistribution(targetLogits, options, _target);
        for (int i = 0; i < draws.Length; i++)
        {
            int x = draws[i];
            if (random.NextDouble() < AcceptanceProbability(_target[x], q[x]))
            {
                next = x;
                return i;
            }
            double mass = ComputeResidual(q);
            if (mass <= 0) break;   // p ≤ q everywhere means p = q: a rejection cannot happen but by rounding; keep p
            float scale = (float)(1.0 / mass);
            for (int v = 0; v < _target.Length; v++) _target[v] = _residual[v] * scale;
        }
        next = TokenSampler.SampleFrom(_target, random);
        return -1;
    }

    /// <summary>A draw from normalize(max(0, p − q)) with p in _target; falls back to p if rounding left no mass.</summary>
    private int SampleResidual(ReadOnlySpan<float> q, DeterministicRandom random) =>
        TokenSampler.SampleFrom(ComputeResidual(q) > 0 ? _residual : _target, random);

    /// <summary>_residual = max(0, p − q) with p in _target (unnormalized); returns its mass.</summary>
    private double ComputeResidual(ReadOnlySpan<float> q)
    {
        double mass = 0;
        for (int v = 0; v < _residual.Length; v++)
        {
            float r = _target[v] - q[v];
            _residual[v] = r > 0 ? r : 0;
            mass += _residual[v];
        }
        return mass;
    }
}
