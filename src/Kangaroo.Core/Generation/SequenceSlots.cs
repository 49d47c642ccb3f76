using Kangaroo.Sampling;
using Kangaroo.Speculative;

namespace Kangaroo.Generation;

/// <summary>What the scheduler keeps per sequence slot: sampling, the tokens in the cache, the last token, the first token awaiting its round, statistics.</summary>
internal sealed class SequenceSlots
{
    private readonly bool[] _firstTokenWaiting;
    private readonly List<int>[] _cached;

    public SequenceSlots(int count)
    {
        Count = count;
        Sampling = new SequenceSampling[count];
        Last = new int[count];
        Started = new bool[count];
        Speculates = new bool[count];
        _firstTokenWaiting = new bool[count];
        _cached = new List<int>[count];
        Counters = new RoundCounters[count];
        for (int s = 0; s < count; s++)
        {
            Sampling[s] = new SequenceSampling(SamplingSettings.Greedy, new DeterministicRandom(0));
            _cached[s] = [];
            Speculates[s] = true;
            Counters[s] = new RoundCounters();
        }
    }

    public int Count { get; }
    public SequenceSampling[] Sampling { get; }
    /// <summary>The newest token, the next round's input (in no cache yet).</summary>
    public int[] Last { get; }
    public bool[] Started { get; }
    /// <summary>Whether the sequence drafts (with a proposer); one that does not decodes plainly in the same rounds.</summary>
    public bool[] Speculates { get; }
    public RoundCounters[] Counters { get; }

    /// <summary>Positions of the sequence in the cache (the last token is not among them).</summary>
    public int Length(int sequence) => _cached[sequence].Count;

    /// <summary>The tokens whose keys and values the sequence's cache region holds, position by position.</summary>
    public List<int> Cached(int sequence) => _cached[sequence];

    public void Configure(int sequence, GenerationOptions options, DeterministicRandom random, bool drafts)
    {
        CheckSequence(sequence);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        Sampling[sequence] = new SequenceSampling(options.Sampling, random);
        Speculates[sequence] = drafts;
    }

    /// <summary>A prompt is starting in the slot, keeping its first <paramref name="kept"/> cached positions; its first token (in <see cref="Last"/>) goes out with its next round.</summary>
    public void Start(int sequence, int kept)
    {
        Started[sequence] = true;
        _firstTokenWaiting[sequence] = true;
        _cached[sequence].RemoveRange(kept, _cached[sequence].Count - kept);
        Counters[sequence].Reset();
    }

    public bool TakeFirstToken(int sequence, out int token)
    {
        token = Last[sequence];
        if (!_firstTokenWaiting[sequence]) return false;
        _firstTokenWaiting[sequence] = false;
        return true;
    }

    public void CheckSequence(int sequence)
    {
        if ((uint)sequence >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence, $"sequence slots are [0, {Count})");
    }

    /// <summary>Distinct started slots, room ≥ 1 each, and room for the outputs.</summary>
    public void CheckRound(ReadOnlySpan<int> sequences, ReadOnlySpan<int> room, Span<int> output, Span<int> counts, int maxTokensPerStep)
    {
        if (room.Length < sequences.Length || counts.Length < sequences.Length || output.Length < (long)sequences.Length * maxTokensPerStep)
            throw new ArgumentException($"{sequences.Length} sequences need as many rooms and counts and {sequences.Length * maxTokensPerStep} output tokens");
        Span<bool> seen = Count <= 1024 ? stackalloc bool[Count] : new bool[Count];
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            CheckSequence(s);
            if (seen[s]) throw new ArgumentException($"sequence {s} is listed twice in one round", nameof(sequences));
            seen[s] = true;
            if (!Started[s]) throw new InvalidOperationException($"sequence {s} has no prompt: Prefill must come first");
            if (room[i] < 1) throw new ArgumentOutOfRangeException(nameof(room), room[i], $"sequence {s}: room for at least one token is needed");
        }
    }
}
