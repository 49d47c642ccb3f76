using Kangaroo.Model;

namespace Kangaroo.Generation;

/// <summary>Plain autoregressive decoding: one full forward pass per token.</summary>
public sealed class VanillaDecoder : ISequenceDecoder, IDisposable
{
    private readonly LlamaModel _model;
    private readonly KvCache _cache;
    private readonly ForwardWorkspace _workspace;
    private readonly TokenSampler _sampler;
    private readonly float[] _logits;
    private readonly float[] _probabilities;
    private readonly List<int> _sequence = [];
    private GenerationOptions _options = new();
    private DeterministicRandom _random = new(0);
    private bool _logitsReady;
    private readonly Action _decodeStep;

    /// <param name="contextLength">Positions the KV cache holds (prompt + generated).</param>
    /// <param name="prefillChunk">Rows per forward call while processing the prompt.</param>
    public VanillaDecoder(LlamaModel model, int contextLength, int prefillChunk = 64)
    {
        _model = model;
        _cache = model.CreateCache(contextLength);
        _workspace = model.CreateWorkspace(Math.Min(prefillChunk, contextLength));
        _sampler = new TokenSampler(model.Config.VocabSize);
        _logits = new float[model.Config.VocabSize];
        _probabilities = new float[model.Config.VocabSize];
        _decodeStep = () =>
        {
            _model.EmbedStaged(_workspace, 1);
            _model.RunLayers(_workspace, _cache, 0, _model.Config.NumLayers, 1);
            _model.ComputeLogits(_workspace, 0, 1);
        };
    }

    public int ContextLength => _cache.Capacity;

    /// <summary>Sets sampling for the next sequence (call before <see cref="Prefill"/>).</summary>
    public void Configure(GenerationOptions options, DeterministicRandom random)
    {
        _options = options;
        _random = random;
    }

    public void Prefill(ReadOnlySpan<int> promptTokens)
    {
        SequenceDecoderArguments.CheckPrompt(promptTokens, _cache.Capacity);

        // Keep the longest cached prefix of the new prompt (at least one token is run, to get its logits). Row
        // invariance makes this bit-identical to starting from scratch.
        int reuse = 0;
        int limit = Math.Min(Math.Min(_cache.Length, _sequence.Count), promptTokens.Length - 1);
        while (reuse < limit && _sequence[reuse] == promptTokens[reuse]) reuse++;
        _cache.Truncate(reuse);
        _sequence.RemoveRange(reuse, _sequence.Count - reuse);

        _model.Prefill(promptTokens[reuse..], _cache, _workspace);
        _sequence.AddRange(promptTokens[reuse..]);
        _logitsReady = true;
    }

    public int Next(Span<int> destination)
    {
        if (destination.IsEmpty) throw new ArgumentException("no room for a token", nameof(destination));
        if (!_logitsReady)
        {
            if (_sequence.Count == 0) throw new InvalidOperationException("Prefill must come first");
            int last = _sequence[^1];
            if (_cache.Length + 1 > _cache.Capacity)
                throw new InvalidOperationException($"the context holds {_cache.Capacity} positions");
            _model.StageTokens(_workspace, [last], _cache.Length);
            _model.RunRecorded(_workspace, "decode", _cache, 1, _decodeStep);
            _cache.Advance(1);
        }
        int token;
        if (_options.IsGreedy)
        {
            // Only the winner crosses from the device: an id and its probability, not the logits.
            Span<int> best = stackalloc int[1];
            Span<float> probability = stackalloc float[1];
            _model.Backend.ArgmaxWithProbabilityChecked(_workspace.Logits, 1, _model.Config.VocabSize, best, probability);
            token = best[0];
        }
        else
        {
            _model.Backend.Download(_workspace.Logits, 0, _logits);
            token = _sampler.Sample(_logits, _options, _random, _probabilities);
        }
        _sequence.Add(token);
        _logitsReady = false;
        destination[0] = token;
        return 1;
    }

    public void Dispose()
    {
        _cache.Dispose();
        _workspace.Dispose();
    }
}
