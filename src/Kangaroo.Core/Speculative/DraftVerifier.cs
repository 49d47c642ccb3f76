using Kangaroo.Sampling;

namespace Kangaroo.Speculative;

/// <summary>
/// Decides which drafted tokens to keep, given the target's choices or logits for every node of a sequence's draft (a
/// chain is a tree whose nodes each have one child). Lossless both ways: greedy keeps the longest path whose every token
/// is the target's argmax after its parent; sampling runs recursive rejection sampling over each node's i.i.d. draws
/// (SpecInfer's multi-step speculative sampling; with one draw per node it is the standard speculative sampling:
/// accept x with probability min(1, p(x)/q(x)), else draw from normalize(max(0, p − q))), so every token is distributed
/// exactly as the target's own sampling. Temperature / top-k / top-p shape p and q the same way (<see cref="TokenSampler"/>).
/// </summary>
internal sealed class DraftVerifier
{
    private readonly TokenSampler _sampler;
    private readonly float[] _target;
    private readonly float[] _residual;
    private readonly int[] _drawTokens;

    /// <summary>
    /// The probability of accepting a draft given p(x) (target) and q(x) (draft): min(1, p/q). Replaceable only so that
    /// tests can prove the distribution test catches a wrong rule.
    /// </summary>
    internal Func<double, double, double> AcceptanceProbability { get; set; } = static (p, q) => q > 0 ? Math.Min(1.0, p / q) : 0;

    public DraftVerifier(int vocabSize, int maxDraws = 1)
    {
        _sampler = new TokenSampler(vocabSize);
        _target = new float[vocabSize];
        _residual = new float[vocabSize];
        _drawTokens = new int[Math.Max(1, maxDraws)];
    }

    /// <summary>
    /// Greedy: from the root, follow the child whose token is the target's choice after its parent (<paramref name="targets"/>[n]
    /// for node n). Writes the kept path (root first) and returns its length; <paramref name="next"/> is the target's token after it.
    /// </summary>
    internal static int AcceptGreedy(SequenceDraft draft, ReadOnlySpan<int> targets, Span<int> path, out int next)
    {
        int length = draft.Tree.AcceptGreedy(targets, path);
        next = targets[path[length - 1]];
        return length;
    }

    /// <summary>
    /// Sampling: <paramref name="targetLogits"/> holds one row per node. From the root, each node's draws are verified in
    /// order against the target's distribution there; the first accepted draw's child continues the path, and where none is
    /// accepted (or the node has no draws) <paramref name="next"/> is drawn from what remains of the target's distribution.
    /// Returns the path length.
    /// </summary>
    internal int AcceptSampled(SequenceDraft draft, ReadOnlySpan<float> targetLogits, SequenceSampling sampling, Span<int> path, out int next)
    {
        int vocab = _sampler.VocabSize, length = 0, current = 0;
        path[length++] = 0;
        while (true)
        {
            int draws = draft.DrawCounts[current];
            for (int i = 0; i < draws; i++) _drawTokens[i] = draft.Tree.Token(draft.Draws[current * draft.MaxDraws + i]);
            int chosen = VerifyNode(targetLogits.Slice(current * vocab, vocab), draft.Distribution(current), _drawTokens.AsSpan(0, draws),
                sampling, out next);
            if (chosen < 0) return length;
            current = draft.Draws[current * draft.MaxDraws + chosen];
            path[length++] = current;
        }
    }

    /// <summary>
    /// One node: <paramref name="draws"/> were drawn i.i.d. from the draft distribution <paramref name="q"/> (repeats
    /// allowed). Draw i is accepted with probability min(1, pᵢ(x)/q(x)); each rejection replaces pᵢ by normalize(max(0, pᵢ − q)).
    /// Returns the index of the accepted draw, or −1 with <paramref name="next"/> drawn from the last residual — so the token
    /// that follows the node is distributed exactly as the target's p (computed from <paramref name="targetLogits"/>).
    /// </summary>
    internal int VerifyNode(ReadOnlySpan<float> targetLogits, ReadOnlySpan<float> q, ReadOnlySpan<int> draws, SequenceSampling sampling,
        out int next)
    {
        _sampler.ComputeDistribution(targetLogits, sampling.Settings, _target);
        var random = sampling.Random;
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
