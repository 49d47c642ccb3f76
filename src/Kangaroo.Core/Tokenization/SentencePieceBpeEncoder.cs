using System.Buffers;
using System.Text;

namespace Kangaroo.Tokenization;

/// <summary>
/// SentencePiece's BPE segmentation of already-normalized text (sentencepiece bpe_model.cc semantics).
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers 2.0.1 has a BPE model for SentencePiece files, but when two candidate merges have the same
/// score (the same piece at overlapping places, as in "!!!" or a run of spaces) it merges the rightmost first, while
/// SentencePiece merges the leftmost: "    " comes out as ▁ + ▁▁▁ instead of ▁▁▁ + ▁ and the model sees ids it
/// was never trained on. Its merge candidates also include control and byte pieces, so text such as "&lt;s&gt;" can
/// merge into a control token. The merge loop is therefore done here; the library still provides normalization.
/// Immutable after construction and safe to use from many threads.
/// </remarks>
internal sealed class SentencePieceBpeEncoder
{
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _mergeable;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _reserved;
    private readonly float[] _scores;
    private readonly PieceType[] _types;
    private readonly int[] _byteIds;
    private readonly int _unknownId;
    private readonly bool _byteFallback;
    private readonly bool _hasUnused;
    private readonly Dictionary<char, string[]>? _userDefinedByFirstChar;

    public SentencePieceBpeEncoder(SentencePieceModelProto model)
    {
        // Like SentencePiece: normal, user-defined and unused pieces can be produced by merges; control, unknown
        // and byte pieces only by their own rules. First occurrence wins for duplicated strings.
        var mergeable = new Dictionary<string, int>(StringComparer.Ordinal);
        var reserved = new Dictionary<string, int>(StringComparer.Ordinal);
        var userDefined = new List<string>();
        _byteIds = new int[256];
        Array.Fill(_byteIds, model.UnknownId);
        for (int id = 0; id < model.Pieces.Length; id++)
        {
            string piece = model.Pieces[id];
            PieceType type = model.Types[id];
            bool isMergeable = type is PieceType.Normal or PieceType.UserDefined or PieceType.Unused;
            (isMergeable ? mergeable : reserved).TryAdd(piece, id);
            if (type == PieceType.UserDefined && piece.Length > 0)
                userDefined.Add(piece);
            if (type == PieceType.Unused)
                _hasUnused = true;
            if (type == PieceType.Byte && TryParseBytePiece(piece, out byte value))
                _byteIds[value] = id;
        }

        _mergeable = mergeable.GetAlternateLookup<ReadOnlySpan<char>>();
        _reserved = reserved.GetAlternateLookup<ReadOnlySpan<char>>();
        _scores = model.Scores;
        _types = model.Types;
        _unknownId = model.UnknownId;
        _byteFallback = model.ByteFallback;
        if (userDefined.Count > 0)
        {
            _userDefinedByFirstChar = userDefined
                .GroupBy(p => p[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.Length).ToArray());
        }
    }

    /// <summary>Parses a byte piece name, <c>&lt;0xE2&gt;</c>.</summary>
    public static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }

    /// <summary>Appends the ids of <paramref name="normalized"/> (the normalizer's output) to <paramref name="ids"/>.</summary>
    public void Encode(ReadOnlySpan<char> normalized, List<int> ids)
    {
        if (normalized.IsEmpty)
            return;

        Symbol[] symbols = ArrayPool<Symbol>.Shared.Rent(normalized.Length);
        try
        {
            int count = SplitIntoSymbols(normalized, symbols);
            Dictionary<string, (string Left, string Right)>? reverseMerges = Merge(normalized, symbols, count);

            bool previousWasUnknown = false;
            for (int i = 0; i != -1; i = symbols[i].Next)
                EmitPiece(normalized.Slice(symbols[i].Start, symbols[i].Length), reverseMerges, ids, ref previousWasUnknown);
        }
        finally
        {
            ArrayPool<Symbol>.Shared.Return(symbols);
        }
    }

    private int SplitIntoSymbols(ReadOnlySpan<char> text, Symbol[] symbols)
    {
        int count = 0;
        for (int start = 0; start < text.Length;)
        {
            int length = char.IsHighSurrogate(text[start]) && start + 1 < text.Length && char.IsLowSurrogate(text[start + 1]) ? 2 : 1;
            bool frozen = false;
            if (_userDefinedByFirstChar is not null && _userDefinedByFirstChar.TryGetValue(text[start], out string[]? candidates))
            {
                foreach (string candidate in candidates)
                {
                    if (text[start..].StartsWith(candidate, StringComparison.Ordinal))
                    {
                        length = candidate.Length;
                        frozen = true;
                        break;
                    }
                }
            }
            symbols[count] = new Symbol(start, length, count - 1, start + length < text.Length ? count + 1 : -1, frozen);
            count++;
            start += length;
        }
        return count;
    }

    private Dictionary<string, (string Left, string Right)>? Merge(ReadOnlySpan<char> text, Symbol[] symbols, int count)
    {
        var agenda = new PriorityQueue<CandidatePair, ulong>(count);
        Dictionary<string, (string Left, string Right)>? reverseMerges = null;

        for (int i = 1; i < count; i++)
            Propose(i - 1, i, text, symbols, agenda, ref reverseMerges);

        while (agenda.TryDequeue(out CandidatePair top, out _))
        {
            ref Symbol left = ref symbols[top.Left];
            ref Symbol right = ref symbols[top.Right];
            // Stale entries: one side was merged away or grew since the pair was proposed.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != top.Length)
                continue;

            left.Length += right.Length;
            left.Next = right.Next;
            if (right.Next >= 0)
                symbols[right.Next].Prev = top.Left;
            right.Length = 0;

            Propose(left.Prev, top.Left, text, symbols, agenda, ref reverseMerges);
            Propose(top.Left, left.Next, text, symbols, agenda, ref reverseMerges);
        }
        return reverseMerges;
    }

    private void Propose(int leftIndex, int rightIndex, ReadOnlySpan<char> text, Symbol[] symbols,
        PriorityQueue<CandidatePair, ulong> agenda, ref Dictionary<string, (string Left, string Right)>? reverseMerges)
    {
        if (leftIndex < 0 || rightIndex < 0)
            return;
        Symbol left = symbols[leftIndex], right = symbols[rightIndex];
        if (left.Frozen || right.Frozen)
            return;
        int length = left.Length + right.Length;
        ReadOnlySpan<char> merged = text.Slice(left.Start, length);
        if (!_mergeable.TryGetValue(merged, out int id))
            return;

        agenda.Enqueue(new CandidatePair(leftIndex, rightIndex, length), Priority(_scores[id], leftIndex));

        if (_types[id] == PieceType.Unused)
        {
            // An unused piece may take part in merges but is never emitted; remember how to split it again.
            reverseMerges ??= new Dictionary<string, (string, string)>(StringComparer.Ordinal);
            reverseMerges[merged.ToString()] = (text.Slice(left.Start, left.Length).ToString(), text.Slice(right.Start, right.Length).ToString());
        }
    }

    /// <summary>Highest score first; among equal scores the leftmost pair first (as SentencePiece does).</summary>
    private static ulong Priority(float score, int leftIndex)
    {
        uint bits = BitConverter.SingleToUInt32Bits(score);
        uint ascending = (bits & 0x8000_0000) != 0 ? ~bits : bits | 0x8000_0000;   // orders like the float
        return ((ulong)~ascending << 32) | (uint)leftIndex;
    }

    private void EmitPiece(ReadOnlySpan<char> piece, Dictionary<string, (string Left, string Right)>? reverseMerges,
        List<int> ids, ref bool previousWasUnknown)
    {
        int id = PieceToId(piece);
        if (_hasUnused && _types[id] == PieceType.Unused && reverseMerges is not null
            && reverseMerges.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(piece, out var parts))
        {
            EmitPiece(parts.Left, reverseMerges, ids, ref previousWasUnknown);
            EmitPiece(parts.Right, reverseMerges, ids, ref previousWasUnknown);
            return;
        }

        bool isUnknown = id == _unknownId;
        if (isUnknown && _byteFallback)
        {
            int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
            Span<byte> utf8 = maxBytes <= 64 ? stackalloc byte[64] : new byte[maxBytes];
            int byteCount = Encoding.UTF8.GetBytes(piece, utf8);
            foreach (byte b in utf8[..byteCount])
                ids.Add(_byteIds[b]);
        }
        else if (!(isUnknown && previousWasUnknown))   // SentencePiece folds a run of unknown pieces into one
        {
            ids.Add(id);
        }
        previousWasUnknown = isUnknown;
    }

    private int PieceToId(ReadOnlySpan<char> piece) =>
        _mergeable.TryGetValue(piece, out int id) || _reserved.TryGetValue(piece, out id) ? id : _unknownId;

    private struct Symbol(int start, int length, int prev, int next, bool frozen)
    {
        public int Start = start;
        public int Length = length;
        public int Prev = prev;
        public int Next = next;
        public readonly bool Frozen = frozen;
    }

    private readonly record struct CandidatePair(int Left, int Right, int Length);
}
