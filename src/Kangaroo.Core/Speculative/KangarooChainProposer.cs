using Kangaroo.Model;
using Kangaroo.Sampling;

namespace Kangaroo.Speculative;

/// <summary>
/// Kangaroo's chain drafting for any number of sequences: per draft step one adapter pass and one pass of base layers
/// [0, ℓ) with a row for each sequence still drafting; a sequence stops at its own confidence threshold η (the second
/// early exit) or its limit, and the batch stops once too few still draft (<see cref="KangarooOptions.BatchDraftStop"/>).
/// The adapter never reads the last draft's state in the round that drafts it: when verification accepts every draft,
/// that state waits in the sequence's pending row and the adapter reads it first thing next round — the one place this
/// "one state behind" bookkeeping lives.
/// </summary>
internal sealed class KangarooChainProposer : KangarooProposer
{
    private readonly float _threshold, _batchDraftStop;
    private readonly bool[] _adapterBehind;
    private readonly TokenChooser _chooser;
    private readonly int[] _drafting, _stagedRows, _tokens;
    private readonly float[] _confidence;
    private readonly SequenceSampling[] _rowSampling;
    private readonly DistributionSlot _keepDistribution;
    private DraftRound? _round;
    private int _step;

    public KangarooChainProposer(LlamaModel model, KangarooAdapter adapter, KangarooOptions options, int maxSequences, int contextLength,
        int prefillChunk)
        : base(model, adapter, options, maxSequences, contextLength, prefillChunk, shallowRows: maxSequences, adapterRows: 2 * maxSequences,
            stagedRowsPerSequence: options.MaxDraftSteps + 2, window: 0)
    {
        _threshold = options.Threshold;
        _batchDraftStop = options.BatchDraftStop;
        _adapterBehind = new bool[maxSequences];
        _chooser = new TokenChooser(model.Backend, Vocab);
        _drafting = new int[maxSequences];
        _stagedRows = new int[maxSequences];
        _tokens = new int[maxSequences];
        _confidence = new float[maxSequences];
        _rowSampling = new SequenceSampling[maxSequences];
        _keepDistribution = row => _round!.Drafts[_drafting[row]].Distribution(_step);
    }

    public override int MaxNodes => MaxDepth + 1;
    public override int MaxDraws => 1;
    public override int VerifyWindow => 0;

    /// <summary>Staged row 0 of a sequence: the state its adapter has not read; rows 1…: this round's root and drafts.</summary>
    private int PendingRow(int sequence) => StagedRow(sequence, 0);

    protected override int StagedRowOfNode(SequenceDraft draft, int node) => StagedRow(draft.Sequence, 1 + node);

    /// <summary>A pending state is at the last position, which prefix reuse cannot keep for the adapter.</summary>
    public override int ReusablePositions(int sequence, int length) => _adapterBehind[sequence] ? length - 1 : length;

    public override void Start(int sequence, int keptPositions) => _adapterBehind[sequence] = false;

    public override void Propose(DraftRound round)
    {
        _round = round;
        var rows = Shallow.Rows.Reset(withTokens: true);
        for (int k = 0; k < round.Count; k++)
        {
            var draft = round.Drafts[k];
            draft.Reset();
            rows.Add(draft.Sequence, draft.Position, Slot(draft.Sequence, draft.Position), draft.RootToken);
            _stagedRows[k] = StagedRowOfNode(draft, 0);
        }
        RunShallow(round.Cache, _stagedRows);

        int drafting = 0;
        for (int k = 0; k < round.Count; k++)
        {
            if (round.Drafts[k].DepthLimit > 0) _drafting[drafting++] = k;
        }
        int mayDraft = drafting;
        // A sequence that drafts nothing still lets the adapter catch up on its pending state.
        for (_step = 0; ; _step++)
        {
            var adapterRows = AdapterWorkspace.Rows.Reset();
            Copier.Clear();
            if (_step == 0)
            {
                for (int k = 0; k < round.Count; k++)
                {
                    var draft = round.Drafts[k];
                    if (!_adapterBehind[draft.Sequence]) continue;
                    _adapterBehind[draft.Sequence] = false;
                    Copier.Add(PendingRow(draft.Sequence), adapterRows.Count);
                    adapterRows.Add(draft.Sequence, draft.Position - 1, Slot(draft.Sequence, draft.Position - 1));
                }
            }
            int pending = adapterRows.Count;
            for (int d = 0; d < drafting; d++)
            {
                var draft = round.Drafts[_drafting[d]];
                Copier.Add(StagedRowOfNode(draft, _step), adapterRows.Count);
                adapterRows.Add(draft.Sequence, draft.Position + _step, Slot(draft.Sequence, draft.Position + _step));
                _rowSampling[d] = draft.Sampling;
            }
            if (adapterRows.Count == 0) break;
            Copier.Run(Staged, AdapterWorkspace.Hidden);
            Model.Stage(AdapterWorkspace, AdapterCache, adapterRows);
            Adapter.Run(AdapterWorkspace, AdapterCache, drafting > 0 ? pending : ForwardPass.NoLogits);
            if (drafting == 0) break;

            _chooser.Choose(AdapterWorkspace.Logits, drafting, _rowSampling, _tokens, _confidence, _keepDistribution);
            rows = Shallow.Rows.Reset(withTokens: true);
            for (int d = 0; d < drafting; d++)
            {
                var draft = round.Drafts[_drafting[d]];
                int node = draft.Tree.Add(_tokens[d], parent: _step, _confidence[d]);
                if (!draft.Sampling.IsGreedy) draft.AddDraw(_step, node);
                rows.Add(draft.Sequence, draft.Position + node, Slot(draft.Sequence, draft.Position + node), _tokens[d]);
                _stagedRows[d] = StagedRowOfNode(draft, node);
            }
            RunShallow(round.Cache, _stagedRows);

            int kept = 0;
            for (int d = 0; d < drafting; d++)
            {
                int k = _drafting[d];
                var draft = round.Drafts[k];
                if (_confidence[d] >= _threshold && draft.Tree.Count - 1 < draft.DepthLimit) _drafting[kept++] = k;
            }
            // A draft step costs nearly as much for a few sequences as for all: stragglers do not hold the batch.
            drafting = kept < _batchDraftStop * mayDraft ? 0 : kept;
        }
        _round = null;
        PackVerifyRows(round);
    }

    public override void Accept(SequenceDraft draft, ReadOnlySpan<int> path)
    {
        int drafted = draft.Tree.Count - 1;
        if (path.Length - 1 < drafted) return;
        // Every draft accepted: the adapter has not read the last draft's state; keep it for the next round.
        Model.Backend.Copy(Staged, StagedRowOfNode(draft, drafted) * Hidden, Staged, PendingRow(draft.Sequence) * Hidden, Hidden);
        _adapterBehind[draft.Sequence] = true;
    }
}
