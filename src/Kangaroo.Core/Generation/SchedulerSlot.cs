using Kangaroo.Speculative;

namespace Kangaroo.Generation;

/// <summary>
/// One slot of a <see cref="BatchScheduler"/> seen as a single sequence's decoder: its tokens are those the last batch
/// round gave it, or — when no batch drives it (a generation alone, or its first token) — those of a round of this slot alone.
/// </summary>
internal sealed class SchedulerSlot(BatchScheduler scheduler, int slot) : ISequenceDecoder
{
    private readonly int[] _tokens = new int[scheduler.MaxTokensPerStep];
    private int _count = -1;   // tokens the last round delivered and Next has not taken; −1: none

    public int MaxTokensPerStep => scheduler.MaxTokensPerStep;
    public SpeculativeStats? SpeculativeStats => scheduler.Stats(slot);

    public void Prefill(ReadOnlySpan<int> promptTokens)
    {
        // A generation that ended early (cancelled) may leave a delivered round untaken; the slot's next sequence must not see it.
        _count = -1;
        scheduler.Prefill(slot, promptTokens);
    }

    /// <summary>Hands over what a batch round gave this slot, for the next <see cref="Next"/>.</summary>
    public void Deliver(ReadOnlySpan<int> tokens)
    {
        tokens.CopyTo(_tokens);
        _count = tokens.Length;
    }

    public int Next(Span<int> destination)
    {
        if (destination.IsEmpty) throw new ArgumentException("no room for a token", nameof(destination));
        if (_count < 0)
        {
            Span<int> counts = [0];
            scheduler.Round([slot], [destination.Length], _tokens, counts);
            _count = counts[0];
        }
        int count = _count;
        _count = -1;
        if (count > destination.Length)
            throw new InvalidOperationException($"the round gave {count} tokens for room {destination.Length}");
        _tokens.AsSpan(0, count).CopyTo(destination);
        return count;
    }
}
