using Kangaroo.Generation;
using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>A Kangaroo scheduler (chain or token tree): a sequence decoder that takes the generation's sampling settings.</summary>
public interface ISpeculativeDecoder : ISequenceDecoder, IDisposable
{
    /// <summary>Sets sampling for the next sequence (call before <see cref="ISequenceDecoder.Prefill"/>).</summary>
    void Configure(GenerationOptions options, DeterministicRandom random);

    /// <summary>Drafting and verification figures of the current sequence.</summary>
    SpeculativeStats Stats { get; }
}

/// <summary>
/// The Kangaroo scheduler for one sequence: per round the <see cref="KangarooDrafter"/> drafts with the shallow
/// sub-network + adapter until its confidence stop, the deep layers [ℓ, L) verify the last token and every draft in ONE
/// batched pass, the <see cref="DraftVerifier"/> keeps the accepted prefix plus one target token, and every cache is cut
/// back to the accepted sequence. Written only against <see cref="LlamaModel"/>'s stages, so it runs on every backend;
/// with row-invariant ops its greedy output is bit-identical to <see cref="VanillaDecoder"/>'s.
/// </summary>
public sealed class KangarooDecoder : ISpeculativeDecoder
{
    private readonly LlamaModel _model;
    private readonly KvCache _cache;
    private readonly ForwardWorkspace _verify;
    private readonly KangarooDrafter _drafter;
    private readonly DraftVerifier _verifier;
    private readonly TokenSampler _sampler;
    private readonly int _exitLayer;
    private readonly int _maxDrafts;
    private readonly float _threshold;
    private readonly int[] _drafts;
    private readonly int[] _targets;
    private readonly float[] _targetProbabilities;
    private readonly float[] _draftDistributions;
    private readonly float[] _logits;
    private readonly List<int> _sequence = [];
    private GenerationOptions _options = new();
    private DeterministicRandom _random = new(0);
    private bool _prefillLogitsReady;
    private readonly RoundCounters _counters = new();
    private readonly Action[] _verifySteps;   // by row count

    public KangarooDecoder(LlamaModel model, KangarooAdapter adapter, KangarooOptions options, int contextLength, int prefillChunk = 64)
    {
        options.Validate(model.Config.NumLayers);
        _model = model;
        _exitLayer = options.ResolveExitLayer(adapter, model.Config.NumLayers);
        _maxDrafts = options.MaxDraftSteps;
        _threshold = options.Threshold;
        int vocab = model.Config.VocabSize;
        int rows = Math.Max(prefillChunk, _maxDrafts + 1);
        _cache = model.CreateCache(contextLength);
        _verify = model.CreateWorkspace(rows);
        _drafter = new KangarooDrafter(model, adapter, _exitLayer, _cache, rows);
        _verifySteps = new Action[_maxDrafts + 2];
        for (int r = 1; r <= _maxDrafts + 1; r++)
        {
            int verifyRows = r;
            _verifySteps[r] = () =>
            {
                _model.RunLayers(_verify, _cache, _exitLayer, _model.Config.NumLayers, verifyRows);
                _model.ComputeLogits(_verify, 0, verifyRows);
            };
        }
        _verifier = new DraftVerifier(vocab);
        _sampler = new TokenSampler(vocab);
        _drafts = new int[_maxDrafts];
        _targets = new int[_maxDrafts + 1];
        _targetProbabilities = new float[_maxDrafts + 1];
        _logits = new float[(_maxDrafts + 1) * vocab];
        _draftDistributions = new float[_maxDrafts * vocab];
    }

    public int ContextLength => _cache.Capacity;

    internal DraftVerifier Verifier => _verifier;
    public int ExitLayer => _exitLayer;

    /// <summary>Most tokens one round can emit: γ drafts plus the target's token.</summary>
    public int MaxTokensPerStep => _maxDrafts + 1;

    SpeculativeStats? ISequenceDecoder.SpeculativeStats => Stats;

    public SpeculativeStats Stats => _counters.Snapshot();

    /// <summary>Sets sampling for the next sequence (call before <see cref="Prefill"/>).</summary>
    public void Configure(GenerationOptions options, DeterministicRandom random)
    {
        _options = options;
        _random = random;
    }

    public void Prefill(ReadOnlySpan<int> promptTokens)
    {
        SequenceDecoderArguments.CheckPrompt(promptTokens, _cache.Capacity);
        _cache.Clear();
        _drafter.Reset();
        _sequence.Clear();
        _counters.Reset();

        PrefillSplitAtExit(_model, _cache, _verify, _exitLayer, promptTokens, _drafter.PrefillChunk);
        _sequence.AddRange(promptTokens);
        _prefillLogitsReady = true;
    }

    public int Next(Span<int> destination)
    {
        if (destination.IsEmpty) throw new ArgumentException("no room for a token", nameof(destination));
        if (_prefillLogitsReady)
        {
            _prefillLogitsReady = false;
            destination[0] = ChooseFromLogits(_model, _verify, _options, _random, _sampler, _targets, _targetProbabilities, _logits,
                _draftDistributions);
            _sequence.Add(destination[0]);
            return 1;
        }
        if (_sequence.Count == 0) throw new InvalidOperationException("Prefill must come first");
        return Round(destination);
    }

    private int Round(Span<int> destination)
    {
        int position = _cache.Length;              // the last token (not yet in any cache) sits here
        int lastToken = _sequence[^1];
        // Drafts are limited by γ, by the tokens the caller still wants, and by the cache's room.
        int maxDrafts = Math.Min(_maxDrafts, Math.Min(destination.Length - 1, _cache.Capacity - 1 - position));

        _counters.Draft.Start();
        int drafted = _drafter.Draft(lastToken, position, maxDrafts, _threshold, _verify, _drafts, _options, _random, _draftDistributions);
        _drafter.SaveLastRow(_verify, drafted);
        _counters.Draft.Stop();

        _counters.Verify.Start();
        int rows = drafted + 1;
        _model.SetPositions(_verify, position, rows);
        _model.RunRecorded(_verify, "verify", _cache, rows, _verifySteps[rows]);
        _cache.Advance(rows);
        int accepted;
        var drafts = _drafts.AsSpan(0, drafted);
        if (_options.IsGreedy)
        {
            _model.Backend.ArgmaxWithProbabilityChecked(_verify.Logits, rows, _model.Config.VocabSize, _targets, _targetProbabilities);
            accepted = DraftVerifier.VerifyGreedy(drafts, _targets, destination);
        }
        else
        {
            var logits = _logits.AsSpan(0, rows * _model.Config.VocabSize);
            _model.Backend.Download(_verify.Logits, 0, logits);
            accepted = _verifier.VerifySampling(drafts, _draftDistributions, logits, _options, _random, destination);
        }
        _cache.Truncate(position + accepted + 1);
        _drafter.Commit(position, drafted, accepted);
        _counters.Verify.Stop();

        _counters.Round(drafted, accepted);
        for (int i = 0; i <= accepted; i++) _sequence.Add(destination[i]);
        return accepted + 1;
    }

    /// <summary>
    /// Like <see cref="LlamaModel.Prefill"/>, but split at ℓ: <paramref name="atExit"/>(ws, start, rows) sees each chunk's
    /// layer-ℓ states (the adapter's cache reads them). Leaves the last token's logits in row 0 of ws.Logits.
    /// </summary>
    internal static void PrefillSplitAtExit(LlamaModel model, KvCache cache, ForwardWorkspace ws, int exitLayer, ReadOnlySpan<int> tokens,
        Action<ForwardWorkspace, int, int> atExit)
    {
        while (!tokens.IsEmpty)
        {
            int rows = Math.Min(tokens.Length, ws.MaxRows);
            int start = cache.Length;
            model.Embed(ws, tokens[..rows], start);
            model.RunLayers(ws, cache, 0, exitLayer, rows);
            atExit(ws, start, rows);
            model.RunLayers(ws, cache, exitLayer, model.Config.NumLayers, rows);
            cache.Advance(rows);
            tokens = tokens[rows..];
            if (tokens.IsEmpty) model.ComputeLogits(ws, rows - 1, 1);
        }
    }

    /// <summary>
    /// The token after the prompt, from row 0 of <paramref name="ws"/>.Logits: the argmax (computed on the device) or a
    /// sample (logits copied into <paramref name="logits"/>, <paramref name="scratch"/> for the distribution; both ≥ vocab).
    /// </summary>
    internal static int ChooseFromLogits(LlamaModel model, ForwardWorkspace ws, GenerationOptions options, DeterministicRandom random,
        TokenSampler sampler, Span<int> targets, Span<float> probabilities, Span<float> logits, Span<float> scratch)
    {
        int vocab = model.Config.VocabSize;
        if (options.IsGreedy)
        {
            model.Backend.ArgmaxWithProbabilityChecked(ws.Logits, 1, vocab, targets, probabilities);
            return targets[0];
        }
        model.Backend.Download(ws.Logits, 0, logits[..vocab]);
        return sampler.Sample(logits[..vocab], options, random, scratch[..vocab]);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _verify.Dispose();
        _drafter.Dispose();
    }
}
