using Kangaroo.Backends;

namespace Kangaroo.Model;

/// <summary>
/// Moves hidden-state rows between buffers for a scheduler: one <see cref="IComputeBackend.CopyRows"/> (a gather/scatter,
/// whatever the number of rows) where the rows are scattered, plain copies where they form at most two consecutive runs —
/// a single sequence's case, which then needs no index upload (an upload waits for the device).
/// </summary>
internal sealed class RowCopier : IDisposable
{
    private readonly IComputeBackend _backend;
    private readonly int _width;
    private readonly IndexBuffer _sources, _targets, _identity;
    private readonly int[] _from, _to;

    public RowCopier(IComputeBackend backend, int width, int maxRows)
    {
        _backend = backend;
        _width = width;
        _sources = backend.AllocateIndices(maxRows);
        _targets = backend.AllocateIndices(maxRows);
        _identity = backend.AllocateIndices(maxRows);
        backend.Upload(Enumerable.Range(0, maxRows).ToArray(), _identity);
        _from = new int[maxRows];
        _to = new int[maxRows];
    }

    public int Count { get; private set; }

    /// <summary>Starts a new set of moves.</summary>
    public void Clear() => Count = 0;

    /// <summary>Queues row <paramref name="from"/> of the source to row <paramref name="to"/> of the destination.</summary>
    public void Add(int from, int to)
    {
        _from[Count] = from;
        _to[Count++] = to;
    }

    /// <summary>Runs the queued moves from <paramref name="source"/> to <paramref name="destination"/> (no row both read and written).</summary>
    public void Run(ComputeBuffer source, ComputeBuffer destination)
    {
        if (Count == 0) return;
        int runs = 1;
        for (int i = 1; i < Count; i++)
        {
            if (_from[i] != _from[i - 1] + 1 || _to[i] != _to[i - 1] + 1) runs++;
        }
        if (runs <= 2)
        {
            int start = 0;
            for (int i = 1; i <= Count; i++)
            {
                if (i < Count && _from[i] == _from[i - 1] + 1 && _to[i] == _to[i - 1] + 1) continue;
                _backend.Copy(source, _from[start] * _width, destination, _to[start] * _width, (i - start) * _width);
                start = i;
            }
            return;
        }
        _backend.CopyRows(source, Indices(_from, _sources), destination, Indices(_to, _targets), Count, _width);
    }

    /// <summary>The rows as a device buffer: the resident identity when they are 0, 1, 2, …, else uploaded.</summary>
    private IndexBuffer Indices(int[] rows, IndexBuffer scratch)
    {
        bool identity = true;
        for (int i = 0; i < Count && identity; i++) identity = rows[i] == i;
        if (identity) return _identity;
        _backend.Upload(rows.AsSpan(0, Count), scratch);
        return scratch;
    }

    public void Dispose()
    {
        _sources.Dispose();
        _targets.Dispose();
        _identity.Dispose();
    }
}
