using Kangaroo.Backends;
using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>
/// What Kangaroo's proposers share: the self-draft model — base layers [0, ℓ) (the first early exit), the adapter and the
/// base LM head — with the adapter's cache (one region per sequence, as the base cache), the passes that run it, and a
/// staging buffer where every drafted node's layer-ℓ state waits until the round's verification rows are packed.
/// </summary>
internal abstract class KangarooProposer : IDraftProposer
{
    protected readonly LlamaModel Model;
    protected readonly KangarooAdapter Adapter;
    protected readonly KvCache AdapterCache;
    protected readonly ForwardWorkspace Shallow, AdapterWorkspace;
    /// <summary>[sequences × <see cref="StagedRowsPerSequence"/>, hidden]: each sequence's layer-ℓ states of this round.</summary>
    protected readonly ComputeBuffer Staged;
    protected readonly RowCopier Copier;
    protected readonly int Hidden, Vocab, Capacity;
    private readonly ForwardPass _shallowPass;

    protected KangarooProposer(LlamaModel model, KangarooAdapter adapter, KangarooOptions options, int maxSequences, int contextLength,
        int prefillChunk, int shallowRows, int adapterRows, int stagedRowsPerSequence, int window)
    {
        options.Validate(model.Config.NumLayers);
        Model = model;
        Adapter = adapter;
        ExitLayer = options.ResolveExitLayer(adapter, model.Config.NumLayers);
        MaxDepth = options.MaxDraftSteps;
        Hidden = model.Config.HiddenSize;
        Vocab = model.Config.VocabSize;
        Capacity = contextLength;
        StagedRowsPerSequence = stagedRowsPerSequence;
        _shallowPass = new ForwardPass(true, 0, ExitLayer, ForwardPass.NoLogits);
        AdapterCache = adapter.CreateCache(contextLength, maxSequences);
        Shallow = model.CreateWorkspace(shallowRows, window);
        AdapterWorkspace = adapter.CreateWorkspace(Math.Max(adapterRows, Math.Min(prefillChunk, contextLength)), window);
        Staged = model.Backend.Allocate(maxSequences * stagedRowsPerSequence * Hidden);
        Copier = new RowCopier(model.Backend, Hidden, Math.Max(maxSequences * stagedRowsPerSequence, AdapterWorkspace.MaxRows));
    }

    public int ExitLayer { get; }
    public int MaxDepth { get; }
    public abstract int MaxNodes { get; }
    public abstract int MaxDraws { get; }
    public abstract int VerifyWindow { get; }
    protected int StagedRowsPerSequence { get; }

    public virtual int ReusablePositions(int sequence, int length) => length;
    public virtual void Start(int sequence, int keptPositions) { }
    public abstract void Propose(DraftRound round);
    public abstract void Accept(SequenceDraft draft, ReadOnlySpan<int> path);

    /// <summary>The adapter reads the chunk's layer-ℓ states into its own cache region.</summary>
    public void ReadPrompt(ForwardWorkspace workspace, PassRows rows)
    {
        Model.Backend.Copy(workspace.Hidden, 0, AdapterWorkspace.Hidden, 0, rows.Count * Hidden);
        Model.Stage(AdapterWorkspace, AdapterCache, rows, tokens: false);
        Adapter.Run(AdapterWorkspace, AdapterCache, ForwardPass.NoLogits);
    }

    /// <summary>Cache slot of <paramref name="position"/> of <paramref name="sequence"/> (base and adapter caches alike).</summary>
    protected int Slot(int sequence, int position) => sequence * Capacity + position;

    /// <summary>Row of <paramref name="sequence"/>'s staged state <paramref name="index"/>.</summary>
    protected int StagedRow(int sequence, int index) => sequence * StagedRowsPerSequence + index;

    /// <summary>
    /// The rows filled into <see cref="Shallow"/>'s <see cref="ForwardWorkspace.Rows"/> (with tokens) through base layers
    /// [0, ℓ) into <paramref name="cache"/>; row r's state goes to staged row <paramref name="stagedRows"/>[r].
    /// </summary>
    protected void RunShallow(KvCache cache, ReadOnlySpan<int> stagedRows)
    {
        Model.Stage(Shallow, cache, Shallow.Rows);
        Model.Run(Shallow, cache, _shallowPass);
        Copier.Clear();
        for (int r = 0; r < Shallow.Rows.Count; r++) Copier.Add(r, stagedRows[r]);
        Copier.Run(Shallow.Hidden, Staged);
    }

    /// <summary>Where node <paramref name="node"/> of <paramref name="draft"/> keeps its layer-ℓ state during the round.</summary>
    protected abstract int StagedRowOfNode(SequenceDraft draft, int node);

    /// <summary>Packs every node's staged state into the verification rows, sequence after sequence, and sets each VerifyRow.</summary>
    protected void PackVerifyRows(DraftRound round)
    {
        Copier.Clear();
        int row = 0;
        for (int k = 0; k < round.Count; k++)
        {
            var draft = round.Drafts[k];
            draft.VerifyRow = row;
            for (int n = 0; n < draft.Tree.Count; n++) Copier.Add(StagedRowOfNode(draft, n), row++);
        }
        Copier.Run(Staged, round.Verify.Hidden);
    }

    public virtual void Dispose()
    {
        AdapterCache.Dispose();
        Shallow.Dispose();
        AdapterWorkspace.Dispose();
        Staged.Dispose();
        Copier.Dispose();
    }
}
