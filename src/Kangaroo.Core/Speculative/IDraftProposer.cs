using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>
/// Drafts tokens for the sequences of a batch — the plug-in of the one batch scheduler,
/// which owns everything else: prompts, the verification pass of layers [<see cref="ExitLayer"/>, L), the verdict and
/// the base cache. Every call names its sequences by slot. A proposer may keep state per slot (Kangaroo's adapter cache).
/// </summary>
internal interface IDraftProposer : IDisposable
{
    /// <summary>ℓ: the proposer's drafting ran base layers [0, ℓ) of every node; verification resumes there.</summary>
    int ExitLayer { get; }
    /// <summary>γ: the longest path of drafts in a round.</summary>
    int MaxDepth { get; }
    /// <summary>Most nodes of one sequence's round, the root included.</summary>
    int MaxNodes { get; }
    /// <summary>Most sampled draws per node.</summary>
    int MaxDraws { get; }
    /// <summary>Recent slots a verification row needs (a tree's deepest path + 1); 0 for chains.</summary>
    int VerifyWindow { get; }

    /// <summary>Positions of <paramref name="sequence"/> the proposer's own caches still hold of the first <paramref name="length"/> (prefix reuse keeps no more).</summary>
    int ReusablePositions(int sequence, int length);

    /// <summary>A new prompt starts in the slot; its first <paramref name="keptPositions"/> positions stay cached.</summary>
    void Start(int sequence, int keptPositions);

    /// <summary>A prompt chunk of one sequence passed layers [0, ℓ): <paramref name="rows"/> as staged, their layer-ℓ states in <paramref name="workspace"/>.Hidden.</summary>
    void ReadPrompt(ForwardWorkspace workspace, PassRows rows);

    /// <summary>
    /// Drafts for every sequence of the round: fills each <see cref="SequenceDraft"/>'s tree (and draws when it samples)
    /// within its limits, writes layers [0, ℓ) of every node into the base cache at its tree slot, sets each VerifyRow
    /// (sequences packed in round order) and leaves node n's layer-ℓ state in row VerifyRow + n of the verification
    /// workspace's hidden states.
    /// </summary>
    void Propose(DraftRound round);

    /// <summary>After verification: sequence <paramref name="draft"/> kept <paramref name="path"/> (root first), packed by the scheduler into consecutive positions of the base cache; the proposer does the same for its own state.</summary>
    void Accept(SequenceDraft draft, ReadOnlySpan<int> path);
}
