using Kangaroo.Model;

namespace Kangaroo.Generation;

/// <summary>
/// Plain autoregressive decoding of several sequences at once: a round is one forward pass with one row per sequence,
/// each row at its own position in its own region of a shared KV cache. Row invariance gives every sequence the bits
/// of <see cref="VanillaDecoder"/> alone; with one row per sequence the weights are read once for all of them.
/// </summary>
public sealed class BatchVanillaDecoder : IBatchDecoder
{
    private readonly LlamaModel _model;
    private readonly KvCache _cache;
    private readonly ForwardWorkspace _workspace;
    private readonly TokenSampler _sampler;
    private readonly BatchSequences _state;
    private readonly int[] _rowPositions, _rowSequences, _rowTokens, _chosen;
    private readonly float[] _probabilities, _logits, _distribution;
    private readonly Action[] _steps;   // by rows

    /// <param name="maxSequences">Sequence slots (rows of a round).</param>
    /// <param name="contextLength">Positions each sequence holds (prompt + generated).</param>
    /// <param name="prefillChunk">Rows per forward call while processing a prompt.</param>
    public BatchVanillaDecoder(LlamaModel model, int maxSequences, int contextLength, int prefillChunk = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 1);
        _model = model;
        _cache = model.CreateCache(contextLength, maxSequences);
        _workspace = model.CreateWorkspace(Math.Max(maxSequences, Math.Min(prefillChunk, contextLength)), batched: true);
        _sampler = new TokenSampler(model.Config.VocabSize);
        _state = new BatchSequences(maxSequences);
        int rows = _workspace.MaxRows;
        _rowPositions = new int[rows];
        _rowSequences = new int[rows];
        _rowTokens = new int[maxSequences];
        _chosen = new int[maxSequences];
        _probabilities = new float[maxSequences];
        _logits = new float[model.Config.VocabSize];
        _distribution = new float[model.Config.VocabSize];
        _steps = new Action[maxSequences + 1];
        for (int r = 1; r <= maxSequences; r++)
        {
            int stepRows = r;
            _steps[r] = () =>
            {
                _model.EmbedStaged(_workspace, stepRows);
                _model.RunLayers(_workspace, _cache, 0, _model.Config.NumLayers, stepRows);
                _model.ComputeLogits(_workspace, 0, stepRows);
            };
        }
    }

    public int MaxSequences => _state.Count;
    public int ContextLength => _cache.Capacity;
    public int MaxTokensPerStep => 1;

    public void Configure(int sequence, GenerationOptions options, DeterministicRandom random) => _state.Configure(sequence, options, random);

    public void Prefill(int sequence, ReadOnlySpan<int> promptTokens)
    {
        BatchDecoderArguments.CheckSequence(sequence, MaxSequences);
        SequenceDecoderArguments.CheckPrompt(promptTokens, _cache.Capacity);
        _state.Start(sequence);
        BatchPrefill.Run(_model, _cache, _workspace, sequence, promptTokens, _rowPositions, _rowSequences, atExit: null, exitLayer: 0);
        _state.Lengths[sequence] = promptTokens.Length;
        _state.Last[sequence] = ChooseFromRows(1, [sequence])[0];
    }

    public void Round(ReadOnlySpan<int> sequences, ReadOnlySpan<int> room, Span<int> output, Span<int> counts)
    {
        BatchDecoderArguments.CheckRound(sequences, room, output, counts, MaxSequences, MaxTokensPerStep, _state.Started);
        int rows = 0;
        Span<int> rowOf = stackalloc int[sequences.Length];
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            counts[i] = 1;
            rowOf[i] = -1;
            if (_state.TakeFirstToken(s, out int first))
            {
                output[i] = first;
                continue;
            }
            if (_state.Lengths[s] + 1 > _cache.Capacity)
                throw new InvalidOperationException($"sequence {s}: the context holds {_cache.Capacity} positions");
            _rowPositions[rows] = _state.Lengths[s];
            _rowSequences[rows] = s;
            _rowTokens[rows] = _state.Last[s];
            rowOf[i] = rows++;
        }
        if (rows == 0) return;

        _model.StageBatch(_workspace, _cache, _rowPositions.AsSpan(0, rows), _rowSequences.AsSpan(0, rows), _rowTokens.AsSpan(0, rows));
        _model.RunRecorded(_workspace, "batch decode", _cache, rows, _steps[rows]);
        var chosen = ChooseFromRows(rows, _rowSequences.AsSpan(0, rows));
        for (int i = 0; i < sequences.Length; i++)
        {
            if (rowOf[i] < 0) continue;
            int s = sequences[i];
            _state.Lengths[s]++;
            _state.Last[s] = output[i] = chosen[rowOf[i]];
        }
    }

    /// <summary>
    /// The next token of each row's sequence from rows [0, rows) of the logits: the device's argmax (as
    /// <see cref="VanillaDecoder"/> takes it) for greedy rows, a sample with the sequence's settings for the others.
    /// </summary>
    private ReadOnlySpan<int> ChooseFromRows(int rows, ReadOnlySpan<int> rowSequences)
    {
        int vocab = _model.Config.VocabSize;
        bool anyGreedy = false;
        foreach (int s in rowSequences) anyGreedy |= _state.Options[s].IsGreedy;
        if (anyGreedy) _model.Backend.ArgmaxWithProbabilityChecked(_workspace.Logits, rows, vocab, _chosen, _probabilities);
        for (int r = 0; r < rows; r++)
        {
            int s = rowSequences[r];
            var options = _state.Options[s];
            if (options.IsGreedy) continue;
            _model.Backend.Download(_workspace.Logits, r * vocab, _logits);
            _chosen[r] = _sampler.Sample(_logits, options, _state.Random[s], _distribution);
        }
        return _chosen.AsSpan(0, rows);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _workspace.Dispose();
    }
}
