using System.Numerics.Tensors;
using Kangaroo.Generation;
using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>
/// Kangaroo with a dynamic token tree. Per round: the root (the last accepted token) runs base layers [0, ℓ) and
/// the adapter; then level by level the tree grows (<see cref="TokenTreeOptions"/>): each new level runs layers [0, ℓ)
/// and the adapter as one tree pass — every node attending to exactly its own path — and the adapter's top-K of each
/// node propose the next level. Layers [ℓ, L) then verify every node in one tree pass; the longest path that matches the
/// target's own choices is accepted, plus the target's next token, and both caches are packed to that path
/// (<see cref="Backends.IComputeBackend.MoveKvSlots"/>). Each node's target choice has the bits of a plain decode of
/// its path (row-invariant ops, <see cref="Backends.IComputeBackend.TreeAttention"/>), so the output is vanilla greedy's.
/// Sampling draws each node's children i.i.d. from the adapter and accepts by recursive rejection sampling: lossless too.
/// </summary>
public sealed class KangarooTreeDecoder : ISpeculativeDecoder
{
    private readonly LlamaModel _model;
    private readonly KangarooAdapter _adapter;
    private readonly KvCache _cache, _adapterCache;
    private readonly ForwardWorkspace _verify, _shallow, _adapterWorkspace;
    private readonly int _exitLayer, _depthLimit, _topK, _budget;
    private readonly float _threshold;
    private readonly TokenTree _tree;
    private readonly int[] _positions, _slots, _recent, _tokens, _targets, _path, _from, _to;
    private readonly float[] _targetProbabilities, _logits, _candidateScores, _candidateProbabilities;
    private readonly bool[] _candidateBest;
    private readonly float _expandThreshold;
    private readonly int[] _candidateTokens, _candidateParents, _order;
    private readonly RankComparer _byRank;
    private readonly int[] _proposalTokens;     // [node, k]: the adapter's top-K after each node
    private readonly float[] _proposalProbabilities;
    private readonly List<int> _sequence = [];
    private readonly Action[] _shallowSteps, _adapterSteps, _adapterLogitSteps, _verifySteps;   // by row count
    private readonly RoundCounters _counters = new();
    private readonly DraftVerifier _verifier;
    private readonly TokenSampler _sampler;
    private readonly float[] _q;                 // sampling: [node, vocab], the draft distribution each node's children were drawn from
    private readonly int[] _draws, _drawCounts;  // sampling: [node, i], the child each i.i.d. draw landed on (repeats allowed)
    private readonly int[] _drawTokens;
    private GenerationOptions _options = new();
    private DeterministicRandom _random = new(0);
    private bool _prefillLogitsReady;

    public KangarooTreeDecoder(LlamaModel model, KangarooAdapter adapter, KangarooOptions options, int contextLength, int prefillChunk = 64)
    {
        options.Validate(model.Config.NumLayers);
        var tree = options.Tree ?? throw new ArgumentException("no tree options: use KangarooDecoder for chain drafting", nameof(options));
        _model = model;
        _adapter = adapter;
        _exitLayer = options.ResolveExitLayer(adapter, model.Config.NumLayers);
        _depthLimit = options.MaxDraftSteps;
        (_topK, _threshold, _budget) = (tree.TopK, tree.Threshold, tree.Budget);
        int nodes = _budget + 1, window = _depthLimit + 1, vocab = model.Config.VocabSize;
        _cache = model.CreateCache(contextLength);
        _adapterCache = adapter.CreateCache(contextLength);
        _verify = model.CreateWorkspace(Math.Max(prefillChunk, nodes), window);
        _shallow = model.CreateWorkspace(nodes, window);
        _adapterWorkspace = adapter.CreateWorkspace(Math.Max(prefillChunk, nodes), window);
        _tree = new TokenTree(nodes, window);
        (_positions, _slots, _recent) = (new int[nodes], new int[nodes], new int[nodes * window]);
        (_tokens, _targets, _path, _from, _to) = (new int[nodes], new int[nodes], new int[nodes], new int[nodes], new int[nodes]);
        _targetProbabilities = new float[nodes];
        _logits = new float[nodes * vocab];
        _proposalTokens = new int[nodes * _topK];
        _proposalProbabilities = new float[nodes * _topK];
        _candidateTokens = new int[nodes * _topK];
        _candidateParents = new int[nodes * _topK];
        _candidateScores = new float[nodes * _topK];
        _candidateProbabilities = new float[nodes * _topK];
        _candidateBest = new bool[nodes * _topK];
        _expandThreshold = options.Threshold;
        _order = new int[nodes * _topK];
        _byRank = new RankComparer(this);
        _verifier = new DraftVerifier(vocab);
        _sampler = new TokenSampler(vocab);
        _q = new float[nodes * vocab];
        _draws = new int[nodes * _topK];
        _drawCounts = new int[nodes];
        _drawTokens = new int[_topK];

        _shallowSteps = new Action[nodes + 1];
        _adapterSteps = new Action[nodes + 1];
        _adapterLogitSteps = new Action[nodes + 1];
        _verifySteps = new Action[nodes + 1];
        for (int r = 1; r <= nodes; r++)
        {
            int rows = r;
            _shallowSteps[r] = () =>
            {
                _model.EmbedStaged(_shallow, rows);
                _model.RunLayers(_shallow, _cache, 0, _exitLayer, rows);
            };
            _adapterSteps[r] = () => _adapter.ForwardStaged(_adapterWorkspace, _adapterCache, rows, computeLogits: false);
            _adapterLogitSteps[r] = () => _adapter.ForwardStaged(_adapterWorkspace, _adapterCache, rows, computeLogits: true, everyRow: true);
            _verifySteps[r] = () =>
            {
                _model.RunLayers(_verify, _cache, _exitLayer, _model.Config.NumLayers, rows);
                _model.ComputeLogits(_verify, 0, rows);
            };
        }
    }

    public int ContextLength => _cache.Capacity;
    public int ExitLayer => _exitLayer;

    /// <summary>Most tokens one round can emit: a path of γ drafts plus the target's token.</summary>
    public int MaxTokensPerStep => _depthLimit + 1;

    SpeculativeStats? ISequenceDecoder.SpeculativeStats => Stats;

    public SpeculativeStats Stats => _counters.Snapshot();

    internal DraftVerifier Verifier => _verifier;

    /// <summary>
    /// Sets sampling for the next sequence. Greedy: the tree from the adapter's top-K, the longest matching path accepted.
    /// Sampling: each expanded node's children are i.i.d. draws from the adapter's (processed) distribution and are
    /// verified by recursive rejection sampling (<see cref="DraftVerifier.VerifyTreeNode"/>): lossless.
    /// </summary>
    public void Configure(GenerationOptions options, DeterministicRandom random)
    {
        _options = options;
        _random = random;
    }

    public void Prefill(ReadOnlySpan<int> promptTokens)
    {
        SequenceDecoderArguments.CheckPrompt(promptTokens, _cache.Capacity);
        _cache.Clear();
        _adapterCache.Clear();
        _sequence.Clear();
        _counters.Reset();
        KangarooDecoder.PrefillSplitAtExit(_model, _cache, _verify, _exitLayer, promptTokens,
            (ws, start, rows) => _adapter.Prefill(ws, _adapterWorkspace, _adapterCache, start, rows));
        _sequence.AddRange(promptTokens);
        _prefillLogitsReady = true;
    }

    public int Next(Span<int> destination)
    {
        if (destination.IsEmpty) throw new ArgumentException("no room for a token", nameof(destination));
        if (_prefillLogitsReady)
        {
            _prefillLogitsReady = false;
            destination[0] = KangarooDecoder.ChooseFromLogits(_model, _verify, _options, _random, _sampler, _targets, _targetProbabilities,
                _logits, _q);
            _sequence.Add(destination[0]);
            return 1;
        }
        if (_sequence.Count == 0) throw new InvalidOperationException("Prefill must come first");
        return Round(destination);
    }

    private int Round(Span<int> destination)
    {
        int basePosition = _cache.Length;   // the root (last token, in no cache yet) sits here
        // Depth: γ, the tokens the caller still wants; nodes: the budget and the cache's room.
        int depthLimit = Math.Min(_depthLimit, destination.Length - 1);
        int nodeLimit = Math.Min(_tree.MaxNodes, _cache.Capacity - basePosition);

        _counters.Draft.Start();
        _tree.Reset(_sequence[^1], basePosition);
        Array.Clear(_drawCounts);
        int levelStart = 0, levelEnd = 1;
        RunLevel(levelStart, levelEnd, withLogits: depthLimit > 0);
        for (int depth = 1; depth <= depthLimit; depth++)
        {
            int added = _options.IsGreedy ? Grow(levelStart, levelEnd, nodeLimit) : GrowSampled(levelStart, levelEnd, nodeLimit);
            if (added == 0) break;
            levelStart = levelEnd;
            levelEnd += added;
            RunLevel(levelStart, levelEnd, withLogits: depth < depthLimit);
        }
        _counters.Draft.Stop();

        _counters.Verify.Start();
        int count = _tree.Count;
        _tree.Layout(0, count, _positions, _slots, _recent.AsSpan(0, count * _tree.Window));
        _model.StageTree(_verify, _positions.AsSpan(0, count), _slots.AsSpan(0, count), _recent.AsSpan(0, count * _tree.Window));
        _model.RunRecorded(_verify, "verify", _cache, count, _verifySteps[count]);
        int pathLength, next;
        if (_options.IsGreedy)
        {
            _model.Backend.ArgmaxWithProbabilityChecked(_verify.Logits, count, _model.Config.VocabSize, _targets, _targetProbabilities);
            pathLength = _tree.AcceptGreedy(_targets, _path);
            next = _targets[_path[pathLength - 1]];
        }
        else
        {
            pathLength = AcceptSampled(count, out next);
        }
        int accepted = pathLength - 1;
        for (int i = 1; i < pathLength; i++) destination[i - 1] = _tree.Token(_path[i]);
        destination[accepted] = next;

        // Pack the accepted path into consecutive positions in both caches (node i of the path to base + i).
        int moves = 0;
        for (int i = 1; i < pathLength; i++)
        {
            if (_path[i] == i) continue;
            _from[moves] = basePosition + _path[i];
            _to[moves++] = basePosition + i;
        }
        if (moves > 0)
        {
            _model.Backend.MoveKvSlots(_cache.Storage, _from.AsSpan(0, moves), _to.AsSpan(0, moves));
            _model.Backend.MoveKvSlots(_adapterCache.Storage, _from.AsSpan(0, moves), _to.AsSpan(0, moves));
        }
        _cache.Advance(pathLength);
        _adapterCache.Advance(pathLength);
        _counters.Verify.Stop();

        _counters.Round(count - 1, accepted);
        for (int i = 0; i <= accepted; i++) _sequence.Add(destination[i]);
        return accepted + 1;
    }

    /// <summary>
    /// Nodes [first, end) (one level): base layers [0, ℓ) and the adapter as tree passes; their layer-ℓ states become the
    /// verifier's input rows first..end; with <paramref name="withLogits"/>, the adapter's top-K after each node.
    /// </summary>
    private void RunLevel(int first, int end, bool withLogits)
    {
        int rows = end - first, hidden = _model.Config.HiddenSize, window = _tree.Window;
        _tree.Layout(first, rows, _positions, _slots, _recent.AsSpan(0, rows * window));
        for (int i = 0; i < rows; i++) _tokens[i] = _tree.Token(first + i);
        var positions = _positions.AsSpan(0, rows);
        var slots = _slots.AsSpan(0, rows);
        var recent = _recent.AsSpan(0, rows * window);
        _model.StageTree(_shallow, positions, slots, recent, _tokens.AsSpan(0, rows));
        _model.RunRecorded(_shallow, "shallow", _cache, rows, _shallowSteps[rows]);
        var backend = _model.Backend;
        backend.Copy(_shallow.Hidden, 0, _verify.Hidden, first * hidden, rows * hidden);
        backend.Copy(_shallow.Hidden, 0, _adapterWorkspace.Hidden, 0, rows * hidden);
        _model.StageTree(_adapterWorkspace, positions, slots, recent);
        if (!withLogits)
        {
            _model.RunRecorded(_adapterWorkspace, "adapter", _adapterCache, rows, _adapterSteps[rows]);
            return;
        }
        _model.RunRecorded(_adapterWorkspace, "adapter+heads", _adapterCache, rows, _adapterLogitSteps[rows]);
        int vocab = _model.Config.VocabSize;
        if (_options.IsGreedy)
        {
            // The device picks each node's top-K: k ids and probabilities per node cross to the host, not the logits.
            backend.TopKWithProbabilitiesChecked(_adapterWorkspace.Logits, rows, vocab, _topK, _proposalTokens.AsSpan(first * _topK, rows * _topK),
                _proposalProbabilities.AsSpan(first * _topK, rows * _topK));
            return;
        }
        backend.Download(_adapterWorkspace.Logits, 0, _logits.AsSpan(0, rows * vocab));
        for (int i = 0; i < rows; i++)
            _sampler.ComputeDistribution(_logits.AsSpan(i * vocab, vocab), _options, _q.AsSpan((first + i) * vocab, vocab));
    }

    /// <summary>
    /// Adds the next level from the proposals of nodes [first, end). A node proposes children if it is the root or its own
    /// probability reaches η (the chain's confidence stop); its best proposal always becomes a child — so the tree holds the
    /// chain Kangaroo would draft — and any other whose path probability reaches the tree threshold may. At most top-K
    /// nodes per level (a beam, so the budget buys depth), the best children first, then by path probability.
    /// </summary>
    private int Grow(int first, int end, int nodeLimit)
    {
        int candidates = 0;
        for (int node = first; node < end; node++)
        {
            if (node != 0 && _tree.Probability(node) < _expandThreshold) continue;
            for (int k = 0; k < _topK; k++)
            {
                float p = _proposalProbabilities[node * _topK + k];
                float score = _tree.Score(node) * p;
                if (k > 0 && score < _threshold) break;   // proposals come best first
                _candidateTokens[candidates] = _proposalTokens[node * _topK + k];
                _candidateParents[candidates] = node;
                _candidateProbabilities[candidates] = p;
                _candidateScores[candidates] = score;
                _candidateBest[candidates] = k == 0;
                _order[candidates] = candidates;
                candidates++;
            }
        }
        int added = Math.Min(Math.Min(nodeLimit - _tree.Count, candidates), _topK);
        if (added <= 0) return 0;
        Array.Sort(_order, 0, candidates, _byRank);
        Array.Sort(_order, 0, added);   // the chosen ones in (parent, rank) order: breadth-first numbering
        for (int i = 0; i < added; i++)
        {
            int c = _order[i];
            _tree.Add(_candidateTokens[c], _candidateParents[c], _candidateProbabilities[c]);
        }
        return added;
    }

    /// <summary>
    /// Sampling: each node of [first, end) that passes the expansion gate draws up to top-K tokens i.i.d. from its draft
    /// distribution; a new token becomes a child, a repeat lands on the existing one. Whether to draw again is decided
    /// before the draw (room for one more node, top-K nodes per level), never from the value drawn — the draws stay i.i.d.
    /// </summary>
    private int GrowSampled(int first, int end, int nodeLimit)
    {
        int vocab = _model.Config.VocabSize, added = 0, levelStart = _tree.Count;
        for (int node = first; node < end; node++)
        {
            if (node != 0 && _tree.Probability(node) < _expandThreshold) continue;
            var q = _q.AsSpan(node * vocab, vocab);
            for (int d = 0; d < _topK; d++)
            {
                if (_tree.Count >= nodeLimit || added >= _topK) break;
                int token = TokenSampler.SampleFrom(q, _random);
                int child = -1;
                for (int c = levelStart; c < _tree.Count; c++)
                    if (_tree.Parent(c) == node && _tree.Token(c) == token) { child = c; break; }
                if (child < 0)
                {
                    child = _tree.Add(token, node, q[token]);
                    added++;
                }
                _draws[node * _topK + _drawCounts[node]++] = child;
            }
        }
        return added;
    }

    /// <summary>Sampling acceptance: from the root, recursive rejection sampling over each node's draws. Returns the path length.</summary>
    private int AcceptSampled(int count, out int next)
    {
        int vocab = _model.Config.VocabSize;
        _model.Backend.Download(_verify.Logits, 0, _logits.AsSpan(0, count * vocab));
        int length = 0, current = 0;
        _path[length++] = 0;
        while (true)
        {
            int draws = _drawCounts[current];
            for (int i = 0; i < draws; i++) _drawTokens[i] = _tree.Token(_draws[current * _topK + i]);
            int chosen = _verifier.VerifyTreeNode(_logits.AsSpan(current * vocab, vocab), _q.AsSpan(current * vocab, vocab),
                _drawTokens.AsSpan(0, draws), _options, _random, out next);
            if (chosen < 0) return length;
            current = _draws[current * _topK + chosen];
            _path[length++] = current;
        }
    }

    /// <summary>Candidate order: best children of their parents first, then by path probability, ties by candidate index.</summary>
    private sealed class RankComparer(KangarooTreeDecoder owner) : IComparer<int>
    {
        public int Compare(int a, int b)
        {
            if (a == b) return 0;
            bool bestA = owner._candidateBest[a], bestB = owner._candidateBest[b];
            if (bestA != bestB) return bestA ? -1 : 1;
            int byScore = owner._candidateScores[b].CompareTo(owner._candidateScores[a]);
            return byScore != 0 ? byScore : a.CompareTo(b);
        }
    }

    public void Dispose()
    {
        _cache.Dispose();
        _adapterCache.Dispose();
        _verify.Dispose();
        _shallow.Dispose();
        _adapterWorkspace.Dispose();
    }
}
