using System.Diagnostics;

namespace Kangaroo.Speculative;

/// <summary>What speculative decoding did in one generation.</summary>
public sealed record SpeculativeStats
{
    /// <summary>Verification rounds (each ends with one batched pass of the deep layers).</summary>
    public int Rounds { get; init; }
    /// <summary>Tokens proposed by the drafter.</summary>
    public int Drafted { get; init; }
    /// <summary>Drafted tokens the target agreed with.</summary>
    public int Accepted { get; init; }
    /// <summary>Tokens emitted by rounds: accepted drafts plus one token from the target per round.</summary>
    public int Emitted { get; init; }
    public TimeSpan DraftTime { get; init; }
    public TimeSpan VerifyTime { get; init; }

    /// <summary>Mean tokens a round produced (accepted drafts + the target's token).</summary>
    public double MeanAcceptedPerRound => Rounds > 0 ? (double)Emitted / Rounds : 0;

    /// <summary>Share of drafted tokens accepted.</summary>
    public double AcceptanceRate => Drafted > 0 ? (double)Accepted / Drafted : 0;

    /// <summary>Totals over several generations.</summary>
    public static SpeculativeStats operator +(SpeculativeStats a, SpeculativeStats b) => new()
    {
        Rounds = a.Rounds + b.Rounds, Drafted = a.Drafted + b.Drafted, Accepted = a.Accepted + b.Accepted, Emitted = a.Emitted + b.Emitted,
        DraftTime = a.DraftTime + b.DraftTime, VerifyTime = a.VerifyTime + b.VerifyTime,
    };
}

/// <summary>A speculative decoder's counts and clocks for the current sequence.</summary>
internal sealed class RoundCounters
{
    private int _rounds, _drafted, _accepted, _emitted;

    public Stopwatch Draft { get; } = new();
    public Stopwatch Verify { get; } = new();

    public void Reset()
    {
        _rounds = _drafted = _accepted = _emitted = 0;
        Draft.Reset();
        Verify.Reset();
    }

    /// <summary>One round: <paramref name="drafted"/> tokens proposed, <paramref name="accepted"/> kept, plus the target's token.</summary>
    public void Round(int drafted, int accepted)
    {
        _rounds++;
        _drafted += drafted;
        _accepted += accepted;
        _emitted += accepted + 1;
    }

    public SpeculativeStats Snapshot() => new()
    {
        Rounds = _rounds, Drafted = _drafted, Accepted = _accepted, Emitted = _emitted,
        DraftTime = Draft.Elapsed, VerifyTime = Verify.Elapsed,
    };
}
