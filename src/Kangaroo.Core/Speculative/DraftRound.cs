using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>
/// The typed metadata of one speculative round over a batch: which sequences draft (<see cref="Drafts"/>[0, Count), in
/// round order), the base cache the drafting writes layers [0, ℓ) into, and the verification workspace whose hidden rows
/// receive every node's layer-ℓ state, sequence after sequence.
/// </summary>
internal sealed class DraftRound
{
    public DraftRound(int maxSequences, Func<SequenceDraft> create)
    {
        Drafts = new SequenceDraft[maxSequences];
        for (int k = 0; k < maxSequences; k++) Drafts[k] = create();
    }

    public SequenceDraft[] Drafts { get; }
    public int Count { get; set; }
    public required KvCache Cache { get; init; }
    public required ForwardWorkspace Verify { get; init; }
}
