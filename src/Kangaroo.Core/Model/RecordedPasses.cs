using Kangaroo.Backends;

namespace Kangaroo.Model;

/// <summary>
/// A workspace's recorded passes (CUDA graphs), by typed key: each pass is recorded once per key and replayed after.
/// Everything that varies between rounds (tokens, positions, slots, windows, sequences) lives in the workspace's staged
/// buffers, so one recording serves every round of the same shape.
/// </summary>
internal sealed class RecordedPasses : IDisposable
{
    private readonly Dictionary<RecordedPassKey, ICapturedWork> _recorded = [];

    /// <summary>
    /// Runs <paramref name="work"/>(<paramref name="state"/>) through the pool: replayed if recorded, else run plainly once
    /// (it sizes the backend's scratch, which recording must not allocate) and recorded. A replay allocates nothing.
    /// </summary>
    public void Run<TState>(IGraphCapture capture, RecordedPassKey key, TState state, Action<TState> work)
    {
        if (_recorded.TryGetValue(key, out var recorded))
        {
            recorded.Replay();
            return;
        }
        work(state);
        _recorded[key] = capture.Capture(() => work(state));
    }

    public void Dispose()
    {
        foreach (var recorded in _recorded.Values) recorded.Dispose();
        _recorded.Clear();
    }
}
