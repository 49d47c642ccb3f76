using Kangaroo.Backends;

namespace Kangaroo.Model;

/// <summary>
/// The key/value cache of one sequence: storage on the backend plus the number of valid positions.
/// Position p lives in slot p. Speculative decoding writes ahead and cuts back with <see cref="Truncate"/>.
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

    /// <summary>Cuts the cache back to <paramref name="length"/> positions (rejected speculative tokens).</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"KV cache holds {Length} positions");
        Length = length;
    }

    public void Clear() => Length = 0;

    public void Dispose() => Storage.Dispose();
}
