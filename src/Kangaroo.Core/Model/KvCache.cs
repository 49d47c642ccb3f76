using Kangaroo.Backends;

namespace Kangaroo.Model;

/// <summary>
/// Key/value storage on the backend for one or more sequences (sequence s, position p in slot s · Capacity + p), plus the
/// number of valid positions that <see cref="LlamaModel.Prefill"/> keeps for a single sequence; the scheduler keeps each
/// sequence's length itself.
/// </summary>
public sealed class KvCache : IDisposable
{
    internal KvCache(KvCacheStorage storage) => Storage = storage;

    public KvCacheStorage Storage { get; }
    public int Capacity => Storage.Capacity;

    /// <summary>Positions [0, Length) hold valid keys and values.</summary>
    public int Length { get; private set; }

    /// <summary>Marks <paramref name="count"/> more positions valid (after a forward pass wrote them).</summary>
    public void Advance(int count)
    {
        if (count < 0 || Length + count > Capacity)
            throw new InvalidOperationException($"KV cache: cannot advance by {count} from {Length} (capacity {Capacity})");
        Length += count;
    }

    public void Clear() => Length = 0;

    public void Dispose() => Storage.Dispose();
}
