using Kangaroo.Model;
using Kangaroo.Sampling;

namespace Kangaroo.Speculative;

/// <summary>
/// Kangaroo with a dynamic token tree per sequence, for any number of sequences. Level by level every sequence's tree
/// grows (<see cref="TokenTreeOptions"/>): each level of every sequence runs base layers [0, ℓ) and the adapter in one
/// tree pass — each node attending to exactly its own path in its own sequence — and the adapter's top-K after each node
/// propose the next level. The deep layers then verify every node of every sequence in one pass. Sampling draws each
/// node's children i.i.d. from the adapter's distribution, so recursive rejection sampling keeps it lossless.
/// </summary>
internal sealed class KangarooTreeProposer : KangarooProposer
{
    private readonly int _topK, _nodes;
    private readonly float _treeThreshold, _expandThreshold;
    private readonly int[][] _proposalTokens;      // per round sequence: [node, k], the adapter's top-K after each node
    private readonly float[][] _proposalProbabilities;
    private readonly int[] _levelStart, _levelEnd, _growing, _rowDraft, _rowNode, _stagedRows, _from, _to;
    private readonly int[] _topTokens;
    private readonly float[] _topProbabilities;
    private readonly TokenChooser _chooser;
    private readonly Candidates _candidates;

    public KangarooTreeProposer(LlamaModel model, KangarooAdapter adapter, KangarooOptions options, int maxSequences, int contextLength,
        int prefillChunk)
        : base(model, adapter, options, maxSequences, contextLength, prefillChunk,
            shallowRows: maxSequences * Math.Min(options.Tree!.TopK, options.Tree.Budget + 1),
            adapterRows: maxSequences * Math.Min(options.Tree.TopK, options.Tree.Budget + 1),
            stagedRowsPerSequence: options.Tree.Budget + 1, window: options.MaxDraftSteps + 1)
    {
        var tree = options.Tree;
        (_topK, _treeThreshold, _nodes, _expandThreshold) = (tree.TopK, tree.Threshold, tree.Budget + 1, options.Threshold);
        _proposalTokens = new int[maxSequences][];
        _proposalProbabilities = new float[maxSequences][];
        for (int k = 0; k < maxSequences; k++)
        {
            _proposalTokens[k] = new int[_nodes * _topK];
            _proposalProbabilities[k] = new float[_nodes * _topK];
        }
        (_levelStart, _levelEnd, _growing) = (new int[maxSequences], new int[maxSequences], new int[maxSequences]);
        int levelRows = Shallow.MaxRows;
        (_rowDraft, _rowNode, _stagedRows) = (new int[levelRows], new int[levelRows], new int[levelRows]);
        (_from, _to) = (new int[_nodes], new int[_nodes]);
        _topTokens = new int[levelRows * _topK];
        _topProbabilities = new float[levelRows * _topK];
        _chooser = new TokenChooser(model.Backend, Vocab);
        _candidates = new Candidates(_nodes * _topK);
    }

    public override int MaxNodes => _nodes;
    public override int MaxDraws => _topK;
    public override int VerifyWindow => MaxDepth + 1;

    protected override int StagedRowOfNode(SequenceDraft draft, int node) => StagedRow(draft.Sequence, node);

    public override void Propose(DraftRound round)
    {
        int growing = 0;
        for (int k = 0; k < round.Count; k++)
        {
            round.Drafts[k].Reset();
            (_levelStart[k], _levelEnd[k]) = (0, 1);
            _growing[growing++] = k;
        }
        RunLevel(round, growing, depth: 0);
        for (int depth = 1; depth <= MaxDepth; depth++)
        {
            int still = 0;
            for (int g = 0; g < growing; g++)
            {
                int k = _growing[g];
                var draft = round.Drafts[k];
                if (depth > draft.DepthLimit) continue;
                int added = draft.Sampling.IsGreedy ? Grow(draft, k) : GrowSampled(draft, k);
                if (added == 0) continue;
                (_levelStart[k], _levelEnd[k]) = (_levelEnd[k], _levelEnd[k] + added);
                _growing[still++] = k;
            }
            growing = still;
            if (growing == 0) break;
            RunLevel(round, growing, depth);
        }
        PackVerifyRows(round);
    }

    /// <summary>
    /// The newest level of each growing sequence: base layers [0, ℓ) and the adapter as one tree pass; each node's state
    /// goes to its staged row; where a sequence may grow deeper, the adapter's proposals after each of its nodes.
    /// </summary>
    private void RunLevel(DraftRound round, int growing, int depth)
    {
        var rows = Shallow.Rows.Reset(VerifyWindow, withTokens: true);
        bool anyLogits = false;
        for (int g = 0; g < growing; g++)
        {
            int k = _growing[g];
            var draft = round.Drafts[k];
            int first = _levelStart[k], count = _levelEnd[k] - first;
            for (int n = first; n < first + count; n++)
            {
                (_rowDraft[rows.Count + n - first], _rowNode[rows.Count + n - first]) = (k, n);
                _stagedRows[rows.Count + n - first] = StagedRowOfNode(draft, n);
            }
            draft.Tree.AddRows(rows, draft.Sequence, Slot(draft.Sequence, 0), first, count);
            anyLogits |= depth < draft.DepthLimit;
        }
        RunShallow(round.Cache, _stagedRows);
        Model.Backend.Copy(Shallow.Hidden, 0, AdapterWorkspace.Hidden, 0, rows.Count * Hidden);
        Model.Stage(AdapterWorkspace, AdapterCache, rows, tokens: false);
        Adapter.Run(AdapterWorkspace, AdapterCache, anyLogits ? 0 : ForwardPass.NoLogits);
        if (!anyLogits) return;

        bool anyGreedy = false;
        for (int g = 0; g < growing; g++) anyGreedy |= round.Drafts[_growing[g]].Sampling.IsGreedy;
        if (anyGreedy)
        {
            // The device picks each node's top-K: k ids and probabilities per node cross to the host, not the logits.
            Model.Backend.TopKWithProbabilitiesChecked(AdapterWorkspace.Logits, rows.Count, Vocab, _topK, _topTokens.AsSpan(0, rows.Count * _topK),
                _topProbabilities.AsSpan(0, rows.Count * _topK));
        }
        for (int r = 0; r < rows.Count; r++)
        {
            int k = _rowDraft[r], node = _rowNode[r];
            var draft = round.Drafts[k];
            if (draft.Sampling.IsGreedy)
            {
                _topTokens.AsSpan(r * _topK, _topK).CopyTo(_proposalTokens[k].AsSpan(node * _topK));
                _topProbabilities.AsSpan(r * _topK, _topK).CopyTo(_proposalProbabilities[k].AsSpan(node * _topK));
                continue;
            }
            _chooser.Sampler.ComputeDistribution(_chooser.Download(AdapterWorkspace.Logits, r, 1), draft.Sampling.Settings, draft.Distribution(node));
        }
    }

    /// <summary>
    /// Adds the next level from the proposals of the newest level. A node proposes children if it is the root or its own
    /// probability reaches η (the chain's confidence stop); its best proposal always becomes a child — so the tree holds the
    /// chain Kangaroo would draft — and any other whose path probability reaches the tree threshold may. At most top-K
    /// nodes per level (a beam, so the budget buys depth), the best children first, then by path probability.
    /// </summary>
    private int Grow(SequenceDraft draft, int k)
    {
        var tree = draft.Tree;
        var tokens = _proposalTokens[k];
        var probabilities = _proposalProbabilities[k];
        var c = _candidates;
        c.Count = 0;
        for (int node = _levelStart[k]; node < _levelEnd[k]; node++)
        {
            if (node != 0 && tree.Probability(node) < _expandThreshold) continue;
            for (int j = 0; j < _topK; j++)
            {
                float p = probabilities[node * _topK + j];
                float score = tree.Score(node) * p;
                if (j > 0 && score < _treeThreshold) break;   // proposals come best first
                c.Add(tokens[node * _topK + j], node, p, score, best: j == 0);
            }
        }
        int added = Math.Min(Math.Min(draft.NodeLimit - tree.Count, c.Count), _topK);
        if (added <= 0) return 0;
        c.SortChosen(added);
        for (int i = 0; i < added; i++)
        {
            int chosen = c.Order[i];
            tree.Add(c.Tokens[chosen], c.Parents[chosen], c.Probabilities[chosen]);
        }
        return added;
    }

    /// <summary>
    /// Sampling: each node of the newest level that passes the expansion gate draws up to top-K tokens i.i.d. from its
    /// draft distribution; a new token becomes a child, a repeat lands on the existing one. Whether to draw again is decided
    /// before the draw (room for one more node, top-K nodes per level), never from the value drawn — the draws stay i.i.d.
    /// </summary>
    private int GrowSampled(SequenceDraft draft, int k)
    {
        var tree = draft.Tree;
        int added = 0, levelStart = tree.Count;
        for (int node = _levelStart[k]; node < _levelEnd[k]; node++)
        {
            if (node != 0 && tree.Probability(node) < _expandThreshold) continue;
            var q = draft.Distribution(node);
            for (int d = 0; d < _topK; d++)
            {
                if (tree.Count >= draft.NodeLimit || added >= _topK) break;
                int token = TokenSampler.SampleFrom(q, draft.Sampling.Random);
                int child = -1;
                for (int c = levelStart; c < tree.Count; c++)
                    if (tree.Parent(c) == node && tree.Token(c) == token) { child = c; break; }
                if (child < 0)
                {
                    child = tree.Add(token, node, q[token]);
                    added++;
                }
                draft.AddDraw(node, child);
            }
        }
        return added;
    }

    public override void Accept(SequenceDraft draft, ReadOnlySpan<int> path)
    {
        int moves = TreePacking.Moves(draft, path, Slot(draft.Sequence, 0), _from, _to);
        if (moves > 0) Model.Backend.MoveKvSlots(AdapterCache.Storage, _from.AsSpan(0, moves), _to.AsSpan(0, moves));
    }

    /// <summary>Grow's candidates of one level, and their order: best children of their parents first, then by path probability, ties by index.</summary>
    private sealed class Candidates : IComparer<int>
    {
        public Candidates(int capacity)
        {
            Tokens = new int[capacity];
            Parents = new int[capacity];
            Probabilities = new float[capacity];
            Scores = new float[capacity];
            Best = new bool[capacity];
            Order = new int[capacity];
        }

        public int Count;
        public int[] Tokens { get; }
        public int[] Parents { get; }
        public float[] Probabilities { get; }
        public float[] Scores { get; }
        public bool[] Best { get; }
        public int[] Order { get; }

        public void Add(int token, int parent, float probability, float score, bool best)
        {
            (Tokens[Count], Parents[Count], Probabilities[Count], Scores[Count], Best[Count]) = (token, parent, probability, score, best);
            Order[Count] = Count;
            Count++;
        }

        /// <summary>Ranks the candidates and puts the first <paramref name="chosen"/> in (parent, rank) order: breadth-first numbering.</summary>
        public void SortChosen(int chosen)
        {
            Array.Sort(Order, 0, Count, this);
            Array.Sort(Order, 0, chosen);
        }

        public int Compare(int a, int b)
        {
            if (a == b) return 0;
            if (Best[a] != Best[b]) return Best[a] ? -1 : 1;
            int byScore = Scores[b].CompareTo(Scores[a]);
            return byScore != 0 ? byScore : a.CompareTo(b);
        }
    }
}
