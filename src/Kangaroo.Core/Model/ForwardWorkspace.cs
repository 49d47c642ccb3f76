using Kangaroo.Backends;

namespace Kangaroo.Model;

/// <summary>
/// Scratch activations for forward passes of up to <see cref="MaxRows"/> tokens at once. One per session
/// (never shared between threads); allocated once so decode steps allocate nothing.
/// </summary>
public sealed class ForwardWorkspace : IDisposable
{
    /// <param name="withFeedForward">False for attention-only blocks (the Kangaroo adapter): no MLP scratch.</param>
    internal ForwardWorkspace(IComputeBackend backend, LlamaConfig config, int maxRows, bool withFeedForward = true)
    {
        MaxRows = maxRows;
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

    /// <summary>Recorded forward passes of this workspace (CUDA graphs), by what they compute; see <see cref="LlamaModel.RunRecorded"/>.</summary>
    internal Dictionary<(string Step, object? Cache, int Rows), ICapturedWork> Recorded { get; } = [];

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
    /// <summary>Absolute position (= cache slot) of each row.</summary>
    public IndexBuffer Positions { get; }

    public void Dispose()
    {
        foreach (var recorded in Recorded.Values) recorded.Dispose();
        Recorded.Clear();
        foreach (var buffer in new IDisposable?[] { Hidden, Normed, Delta, Queries, Keys, Values, AttentionOutput, Gate, Up, Logits, Tokens, Positions })
            buffer?.Dispose();
    }
}
