namespace Kangaroo.Model;

/// <summary>
/// The rows of one forward pass, said explicitly: for each row its sequence, its logical position (RoPE and causality),
/// the cache slot its keys and values go to, its window of recent slots (a token tree's path; see
/// <see cref="Backends.IComputeBackend.TreeAttention"/>) and, when the pass embeds, its token. A scheduler fills it on the
/// host and <see cref="LlamaModel.Stage"/> uploads it; the same record serves a decode step, a prompt chunk, a draft step,
/// a chain or tree verification, of one sequence or many. Allocation-free after construction.
/// </summary>
public sealed class PassRows
{
    private readonly int[] _positions, _slots, _sequences, _tokens, _recent;

    /// <param name="maxRows">Most rows of a pass.</param>
    /// <param name="maxWindow">Longest recent-slot window (a tree's deepest path + 1); 0 for passes without trees.</param>
    public PassRows(int maxRows, int maxWindow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxWindow);
        MaxRows = maxRows;
        MaxWindow = maxWindow;
        _positions = new int[maxRows];
        _slots = new int[maxRows];
        _sequences = new int[maxRows];
        _tokens = new int[maxRows];
        _recent = new int[maxRows * maxWindow];
    }

    public int MaxRows { get; }
    public int MaxWindow { get; }
    public int Count { get; private set; }
    /// <summary>Recent slots per row; 0: every key sits in its sequence's slot of its position.</summary>
    public int Window { get; private set; }
    /// <summary>Whether every row has a token (the pass starts with the embedding).</summary>
    public bool HasTokens { get; private set; }

    public ReadOnlySpan<int> Positions => _positions.AsSpan(0, Count);
    public ReadOnlySpan<int> Slots => _slots.AsSpan(0, Count);
    public ReadOnlySpan<int> Sequences => _sequences.AsSpan(0, Count);
    public ReadOnlySpan<int> Tokens => HasTokens ? _tokens.AsSpan(0, Count) : default;
    public ReadOnlySpan<int> RecentSlots => _recent.AsSpan(0, Count * Window);

    /// <summary>Starts a new pass whose rows carry <paramref name="window"/> recent slots each, with or without tokens.</summary>
    public PassRows Reset(int window = 0, bool withTokens = false)
    {
        if ((uint)window > (uint)MaxWindow) throw new ArgumentOutOfRangeException(nameof(window), window, $"windows up to {MaxWindow} fit");
        Count = 0;
        Window = window;
        HasTokens = withTokens;
        return this;
    }

    /// <summary>
    /// Adds a row of <paramref name="sequence"/> at <paramref name="position"/>, its keys and values into
    /// <paramref name="slot"/> (absolute). Returns its window to fill (empty when <see cref="Window"/> is 0).
    /// </summary>
    public Span<int> Add(int sequence, int position, int slot, int token = 0)
    {
        if (Count == MaxRows) throw new InvalidOperationException($"a pass holds at most {MaxRows} rows");
        int row = Count++;
        _sequences[row] = sequence;
        _positions[row] = position;
        _slots[row] = slot;
        _tokens[row] = token;
        return _recent.AsSpan(row * Window, Window);
    }

    /// <summary>
    /// Adds <paramref name="count"/> consecutive positions of one sequence from <paramref name="start"/>, each in its own
    /// slot (region start + position), tokens taken from <paramref name="tokens"/> when the pass has tokens; windows
    /// (if any) hold the plain slots before each row.
    /// </summary>
    public void AddRange(int sequence, int regionStart, int start, int count, ReadOnlySpan<int> tokens = default)
    {
        for (int i = 0; i < count; i++)
        {
            int position = start + i;
            var window = Add(sequence, position, regionStart + position, HasTokens ? tokens[i] : 0);
            for (int j = 0; j < window.Length; j++) window[j] = regionStart + position - j;
        }
    }
}
