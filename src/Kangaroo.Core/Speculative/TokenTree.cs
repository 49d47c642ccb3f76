using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>
/// One round's token tree of one sequence on the host; a chain is the tree whose node i is draft i. Node 0 is the root
/// (the last accepted token); nodes are numbered breadth-first, so a node at depth d has index ≥ d and its parent a
/// smaller one. Node n's keys and values live in the slot of position <c>base + n</c> of its sequence's cache region; its
/// logical position is <c>base + depth</c>. Allocation-free after construction.
/// </summary>
internal sealed class TokenTree
{
    private readonly int[] _tokens, _parents, _depths;
    private readonly float[] _scores, _probabilities;

    public TokenTree(int maxNodes, int window)
    {
        _tokens = new int[maxNodes];
        _parents = new int[maxNodes];
        _depths = new int[maxNodes];
        _scores = new float[maxNodes];
        _probabilities = new float[maxNodes];
        Window = window;
    }

    /// <summary>Recent keys a node's slot map covers: the deepest path (root included) fits in it.</summary>
    public int Window { get; }
    public int Count { get; private set; }
    public int MaxNodes => _tokens.Length;
    public int Base { get; private set; }

    public int Token(int node) => _tokens[node];
    public int Parent(int node) => _parents[node];
    public int Depth(int node) => _depths[node];
    /// <summary>The node's path probability: the product of the drafter's probabilities along its path.</summary>
    public float Score(int node) => _scores[node];
    /// <summary>The drafter's probability of the node given its parent.</summary>
    public float Probability(int node) => _probabilities[node];

    /// <summary>Starts a round: the root <paramref name="token"/> at cache position <paramref name="basePosition"/>.</summary>
    public void Reset(int token, int basePosition)
    {
        Base = basePosition;
        Count = 0;
        Add(token, parent: -1, probability: 1f);
    }

    public int Add(int token, int parent, float probability)
    {
        if (Count == MaxNodes) throw new InvalidOperationException("the token tree is full");
        int node = Count++;
        _tokens[node] = token;
        _parents[node] = parent;
        _depths[node] = parent < 0 ? 0 : _depths[parent] + 1;
        if (_depths[node] >= Window) throw new InvalidOperationException($"node {node} at depth {_depths[node]} does not fit a window of {Window}");
        _probabilities[node] = probability;
        _scores[node] = parent < 0 ? probability : _scores[parent] * probability;
        return node;
    }

    /// <summary>
    /// Adds nodes [first, first + count) as rows of a pass over a sequence whose cache region starts at
    /// <paramref name="regionStart"/>: each node at position base + depth, in slot region + base + node; its window (when
    /// the pass has one) is its path back to the root, itself first, then the plain slots before the tree. With tokens,
    /// each row carries its node's token.
    /// </summary>
    public void AddRows(PassRows rows, int sequence, int regionStart, int first, int count)
    {
        for (int node = first; node < first + count; node++)
        {
            int position = Base + _depths[node];
            var window = rows.Add(sequence, position, regionStart + Base + node, _tokens[node]);
            int j = 0;
            for (int n = node; n >= 0 && j < window.Length; n = _parents[n]) window[j++] = regionStart + Base + n;
            for (; j < window.Length; j++) window[j] = regionStart + position - j;   // before the tree (never read below the region)
        }
    }

    /// <summary>
    /// Greedy acceptance: from the root, follow the child whose token is the target's choice after its parent
    /// (<paramref name="targetChoices"/>[n] is the target's argmax after node n). Writes the path's nodes (root first) to
    /// <paramref name="path"/> and returns its length; the target's token after the path is targetChoices[path[^1]].
    /// </summary>
    public int AcceptGreedy(ReadOnlySpan<int> targetChoices, Span<int> path)
    {
        int length = 0, current = 0;
        path[length++] = 0;
        while (true)
        {
            int next = -1;
            for (int child = current + 1; child < Count; child++)
            {
                if (_parents[child] == current && _tokens[child] == targetChoices[current])
                {
                    next = child;
                    break;
                }
            }
            if (next < 0) return length;
            path[length++] = next;
            current = next;
        }
    }
}
