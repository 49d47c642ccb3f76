using Kangaroo.Sampling;

namespace Kangaroo.Speculative;

/// <summary>
/// One sequence's part of a <see cref="DraftRound"/>. The scheduler says where the sequence stands and how far it may
/// draft; the proposer answers with a token tree (a chain is a path) and, when the sequence samples, each node's draws
/// and the distribution they were drawn from — what lossless verification needs.
/// </summary>
internal sealed class SequenceDraft
{
    private readonly int _vocab;
    private float[] _distributions = [];

    public SequenceDraft(int maxNodes, int maxDepth, int maxDraws, int vocab)
    {
        Tree = new TokenTree(maxNodes, maxDepth + 1);
        MaxDraws = maxDraws;
        _vocab = vocab;
        Draws = new int[maxNodes * maxDraws];
        DrawCounts = new int[maxNodes];
    }

    // ---- set by the scheduler before drafting
    /// <summary>The sequence's slot in the batch (its cache region).</summary>
    public int Sequence { get; set; }
    /// <summary>Where the root (the last accepted token, in no cache yet) sits: the sequence's length.</summary>
    public int Position { get; set; }
    public int RootToken { get; set; }
    /// <summary>Longest path of drafts this round (γ, the caller's room, the cache's room).</summary>
    public int DepthLimit { get; set; }
    /// <summary>Most nodes this round, the root included.</summary>
    public int NodeLimit { get; set; }
    public SequenceSampling Sampling { get; set; } = new(SamplingSettings.Greedy, new DeterministicRandom(0));

    // ---- written by the proposer
    public TokenTree Tree { get; }
    /// <summary>First row of this sequence's nodes in the verification pass (node n at <c>VerifyRow + n</c>).</summary>
    public int VerifyRow { get; set; }
    public int MaxDraws { get; }
    /// <summary>Sampling: <c>Draws[node · MaxDraws + i]</c> is the child that node's i-th i.i.d. draw landed on (repeats allowed).</summary>
    public int[] Draws { get; }
    public int[] DrawCounts { get; }

    /// <summary>Sampling: the distribution node <paramref name="node"/>'s children were drawn from.</summary>
    public Span<float> Distribution(int node)
    {
        if (_distributions.Length == 0) _distributions = new float[Tree.MaxNodes * _vocab];
        return _distributions.AsSpan(node * _vocab, _vocab);
    }

    /// <summary>Starts the round: the root alone, no draws.</summary>
    public void Reset()
    {
        Tree.Reset(RootToken, Position);
        Array.Clear(DrawCounts);
    }

    /// <summary>Records that node <paramref name="node"/>'s next draw landed on <paramref name="child"/>.</summary>
    public void AddDraw(int node, int child) => Draws[node * MaxDraws + DrawCounts[node]++] = child;
}
