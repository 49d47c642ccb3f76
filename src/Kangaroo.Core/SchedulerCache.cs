using Kangaroo.Generation;
using Kangaroo.Speculative;

namespace Kangaroo;

/// <summary>
/// A session's schedulers: one for vanilla decoding, one for the Kangaroo settings used last (made again when they
/// change), each with its own caches, so switching between them keeps both sequences' prefixes.
/// </summary>
internal sealed class SchedulerCache(LanguageModel owner, int maxSequences, int contextLength) : IDisposable
{
    private BatchScheduler? _vanilla, _kangaroo;
    private KangarooOptions? _kangarooOptions;

    public BatchScheduler For(KangarooOptions? speculation)
    {
        if (speculation is null) return _vanilla ??= new BatchScheduler(owner.Model, maxSequences, contextLength);
        var adapter = owner.Adapter ?? throw new InvalidRequestException(
            $"Kangaroo decoding needs an adapter: none was loaded (give one, or put it in {Path.Combine(owner.Directory, KangarooAdapter.DefaultSubdirectory)})");
        speculation.Validate(owner.Config.NumLayers);
        if (_kangaroo is null || _kangarooOptions != speculation)
        {
            _kangaroo?.Dispose();
            _kangaroo = null;
            const int prefillChunk = 64;
            var proposer = KangarooProposers.Create(owner.Model, adapter, speculation, maxSequences, contextLength, prefillChunk);
            _kangaroo = new BatchScheduler(owner.Model, maxSequences, contextLength, proposer, prefillChunk);
            _kangarooOptions = speculation;
        }
        return _kangaroo;
    }

    public void Dispose()
    {
        _vanilla?.Dispose();
        _kangaroo?.Dispose();
    }
}
