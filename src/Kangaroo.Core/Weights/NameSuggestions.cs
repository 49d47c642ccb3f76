namespace Kangaroo.Weights;

/// <summary>"Did you mean" hints for missing tensor names; only runs on the error path, so plain edit distance is fine.</summary>
internal static class NameSuggestions
{
    private const int MaxSuggestions = 3;

    /// <summary>"; did you mean "a" or "b"?" for the closest names, or an empty string when none is close.</summary>
    public static string DidYouMean(string name, IReadOnlyCollection<string> candidates)
    {
        int threshold = Math.Max(2, name.Length / 5);
        var close = new List<(string Candidate, int Distance)>();
        foreach (string candidate in candidates)
        {
            if (Math.Abs(candidate.Length - name.Length) > threshold) continue;
            int distance = EditDistance(name, candidate);
            if (distance <= threshold) close.Add((candidate, distance));
        }
        if (close.Count == 0) return "";
        close.Sort((a, b) => a.Distance != b.Distance ? a.Distance.CompareTo(b.Distance) : string.CompareOrdinal(a.Candidate, b.Candidate));
        var quoted = close.Take(MaxSuggestions).Select(c => $"\"{c.Candidate}\"");
        return $"; did you mean {string.Join(" or ", quoted)}?";
    }

    /// <summary>Levenshtein distance with two rolling rows.</summary>
    internal static int EditDistance(ReadOnlySpan<char> a, ReadOnlySpan<char> b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
