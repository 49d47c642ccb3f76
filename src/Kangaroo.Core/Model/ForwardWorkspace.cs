using Kangaroo.Backends;

namespace Kangaroo.Model;

/// <summary>
/// Scratch activations for forward passes of up to <see cref="MaxRows"/> tokens at once. One per session
/// (never shared between threads); allocated once so decode steps allocate nothing.
/// </summary>
public sealed class ForwardWorkspace : IDisposable
{
    /// <param name="withFeedForward">False for attention-only blocks (the Kangaroo adapter): no MLP scratch.</param>
    /// <param name="treeWindow">For token-tree passes: how many recent keys a row may read through its own slot map (the
    /// deepest path + 1); 0 = plain passes only.</param>
    internal ForwardWorkspace(IComputeBackend backend, LlamaConfig config, int maxRows, bool withFeedForward = true, int treeWindow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(treeWindow);
        MaxRows = maxRows;
        TreeWindow = treeWindow;
        Slots = backend.AllocateIndices(maxRows);
        Sequences = backend.AllocateIndices(maxRows);
        if (treeWindow > 0) RecentSlots = backend.AllocateIndices(maxRows * treeWindow);
        Rows = new PassRows(maxRows, treeWindow);
        Hidden = backend.Allocate(maxRows * config.HiddenSize);
        Normed = backend.Allocate(maxRows * config.HiddenSize);
        Delta = backend.Allocate(maxRows * config.HiddenSize);
        Queries = backend.Allocate(maxRows * config.QueryWidth);
        Keys = backend.Allocate(maxRows * config.KvWidth);
        Values = backend.Allocate(maxRows * config.KvWidth);
        AttentionOutput = backend.Allocate(maxRows * config.QueryWidth);
        Gate = withFeedForward ? backend.Allocate(maxRows * config.IntermediateSize) : null!;
        Up = withFeedForward ? backend.Allocate(maxRows * config.IntermediateSize) : null!;
        Logits = backend.Allocate(maxRows * config.VocabSize);
        Tokens = backend.AllocateIndices(maxRows);
        Positions = backend.AllocateIndices(maxRows);
    }

    public int MaxRows { get; }

    /// <summary>Recorded forward passes of this workspace (CUDA graphs), by typed key; see <see cref="LlamaModel.Run"/>.</summary>
    internal RecordedPasses Recorded { get; } = new();

    /// <summary>Host scratch for the rows of a pass, sized for this workspace (schedulers fill it, then stage it).</summary>
    public PassRows Rows { get; }

    /// <summary>What the last <see cref="LlamaModel.Stage"/> staged.</summary>
    public PassShape Staged { get; internal set; }

    /// <summary>True when the staged rows' slots equal their positions (one sequence, no tree): <see cref="Slots"/> was not uploaded.</summary>
    internal bool SlotsArePositions { get; set; }

    /// <summary>Replay recorded passes where the backend can (default on); off re-issues every op each time.</summary>
    public bool UseRecordedPasses { get; set; } = true;

    /// <summary>The residual stream <c>[rows, hidden]</c>: after <see cref="LlamaModel.RunLayers"/> it holds the hidden states leaving the last layer run.</summary>
    public ComputeBuffer Hidden { get; }
    /// <summary><c>[rows, vocab]</c> logits written by <see cref="LlamaModel.ComputeLogits"/>.</summary>
    public ComputeBuffer Logits { get; }

    internal ComputeBuffer Normed { get; }
    internal ComputeBuffer Delta { get; }
    internal ComputeBuffer Queries { get; }
    internal ComputeBuffer Keys { get; }
    internal ComputeBuffer Values { get; }
    internal ComputeBuffer AttentionOutput { get; }
    internal ComputeBuffer Gate { get; }
    internal ComputeBuffer Up { get; }
    internal IndexBuffer Tokens { get; }
    /// <summary>Absolute (logical) position of each row; in plain passes also its cache slot.</summary>
    public IndexBuffer Positions { get; }

    /// <summary>Recent keys a tree pass may remap per row (0: this workspace runs passes without trees only).</summary>
    public int TreeWindow { get; }
    /// <summary>The cache slot each row's keys and values go to.</summary>
    internal IndexBuffer Slots { get; }
    /// <summary>Tree passes: per row, the slots of its last <see cref="TreeWindow"/> keys (see <see cref="IComputeBackend.TreeAttention"/>).</summary>
    internal IndexBuffer? RecentSlots { get; }
    /// <summary>The sequence of each row (caches of several sequences).</summary>
    internal IndexBuffer Sequences { get; }

    public void Dispose()
    {
        Recorded.Dispose();
        foreach (var buffer in new IDisposable?[] { Hidden, Normed, Delta, Queries, Keys, Values, AttentionOutput, Gate, Up, Logits, Tokens, Positions, Slots, RecentSlots, Sequences })
            buffer?.Dispose();
    }
}
