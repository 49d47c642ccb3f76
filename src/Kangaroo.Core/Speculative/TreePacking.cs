namespace Kangaroo.Speculative;

/// <summary>How an accepted path is packed into consecutive positions: node path[i] of the round moves to position base + i.</summary>
internal static class TreePacking
{
    /// <summary>
    /// The slot moves that pack <paramref name="path"/> of <paramref name="draft"/> in a cache region starting at
    /// <paramref name="regionStart"/>, ascending and never reading a slot an earlier move wrote (as
    /// <see cref="Backends.IComputeBackend.MoveKvSlots"/> needs); a chain's path needs none. Returns the number of moves.
    /// </summary>
    public static int Moves(SequenceDraft draft, ReadOnlySpan<int> path, int regionStart, Span<int> from, Span<int> to)
    {
        int moves = 0, start = regionStart + draft.Tree.Base;
        for (int i = 1; i < path.Length; i++)
        {
            if (path[i] == i) continue;
            from[moves] = start + path[i];
            to[moves++] = start + i;
        }
        return moves;
    }
}
