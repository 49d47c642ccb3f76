using System.Numerics.Tensors;
using Kangaroo.Backends;
using Kangaroo.Generation;
using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>
/// The Kangaroo scheduler for several sequences at once. A round drafts for every listed sequence together — one pass of
/// base layers [0, ℓ) and one adapter pass per draft step, with a row for each sequence still drafting (each stops at its
/// own confidence threshold, so draft lengths differ) — then verifies every sequence's drafts in ONE pass of layers
/// [ℓ, L) over all their rows, and keeps each sequence's accepted prefix plus one target token. Sequences live in their
/// own regions of shared base and adapter caches; row invariance gives each the tokens of <see cref="KangarooDecoder"/>
/// alone (greedy: those of vanilla greedy) — with sampling too, since each sequence draws from its own generator in the
/// same order, as long as <see cref="KangarooOptions.BatchDraftStop"/> does not cut a sequence's drafting (0 never does;
/// a cut changes which draws are made, not the output distribution).
/// </summary>
public sealed class BatchKangarooDecoder : IBatchDecoder
{
    private readonly LlamaModel _model;
    private readonly KangarooAdapter _adapter;
    private readonly int _exitLayer, _maxDrafts, _stride, _hidden, _vocab;
    private readonly float _threshold, _batchDraftStop;
    private readonly KvCache _cache, _adapterCache;
    private readonly ForwardWorkspace _shallow, _adapterWorkspace, _verify;
    // [sequences × (stride + 1), hidden]: per sequence, the state its adapter has not read (row 0: every draft of the last
    // round was accepted), then this round's layer-ℓ states (last token, drafts). States move between the passes' buffers
    // with one CopyRows per step, whatever the number of sequences.
    private readonly ComputeBuffer _staged;
    private readonly IndexBuffer _identity, _shallowTargets, _adapterSources, _verifySources, _pendingSources, _pendingTargets;
    private readonly int[] _copyFrom, _copyTo;
    private readonly BatchSequences _state;
    private readonly bool[] _adapterBehind;
    private readonly RoundCounters[] _counters;
    private readonly DraftVerifier _verifier;
    private readonly TokenSampler _sampler;
    private readonly int[] _drafts;                  // [sequences × γ]
    // Per-round scratch, sized for the largest pass; per work item (k) or per row.
    private readonly int[] _rowPositions, _rowSequences, _rowTokens, _argmax;
    private readonly float[] _argmaxProbability, _firstLogits, _firstDistribution, _confidence;
    private readonly int[] _work, _drafted, _limit, _adapterRow, _verifyRow, _drafting;
    private readonly Action[] _shallowSteps, _adapterSteps, _verifySteps;   // by rows

    public BatchKangarooDecoder(LlamaModel model, KangarooAdapter adapter, KangarooOptions options, int maxSequences, int contextLength,
        int prefillChunk = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 1);
        options.Validate(model.Config.NumLayers);
        if (options.Tree is not null)
            throw new InvalidRequestException("token trees are not decoded in batches: give several sequences the chain (Tree = null), or decode each with its tree alone");
        _model = model;
        _adapter = adapter;
        _exitLayer = options.ResolveExitLayer(adapter, model.Config.NumLayers);
        _maxDrafts = options.MaxDraftSteps;
        _threshold = options.Threshold;
        _batchDraftStop = options.BatchDraftStop;
        _stride = _maxDrafts + 1;
        _hidden = model.Config.HiddenSize;
        _vocab = model.Config.VocabSize;
        int verifyRows = Math.Max(maxSequences * _stride, Math.Min(prefillChunk, contextLength));
        _cache = model.CreateCache(contextLength, maxSequences);
        _adapterCache = adapter.CreateCache(contextLength, maxSequences);
        _shallow = model.CreateWorkspace(maxSequences, batched: true);
        _adapterWorkspace = adapter.CreateWorkspace(Math.Max(2 * maxSequences, verifyRows), batched: true);
        _verify = model.CreateWorkspace(verifyRows, batched: true);
        var backend = model.Backend;
        _staged = backend.Allocate(maxSequences * (_stride + 1) * _hidden);
        int rowsMax = Math.Max(verifyRows, 2 * maxSequences);
        _identity = backend.AllocateIndices(rowsMax);
        backend.Upload(Enumerable.Range(0, rowsMax).ToArray(), _identity);
        _shallowTargets = backend.AllocateIndices(maxSequences);
        _adapterSources = backend.AllocateIndices(2 * maxSequences);
        _verifySources = backend.AllocateIndices(maxSequences * _stride);
        _pendingSources = backend.AllocateIndices(maxSequences);
        _pendingTargets = backend.AllocateIndices(maxSequences);
        _copyFrom = new int[rowsMax];
        _copyTo = new int[rowsMax];
        _state = new BatchSequences(maxSequences);
        _adapterBehind = new bool[maxSequences];
        _counters = new RoundCounters[maxSequences];
        for (int s = 0; s < maxSequences; s++) _counters[s] = new RoundCounters();
        _verifier = new DraftVerifier(_vocab);
        _sampler = new TokenSampler(_vocab);
        _drafts = new int[maxSequences * _maxDrafts];
        _rowPositions = new int[rowsMax];
        _rowSequences = new int[rowsMax];
        _rowTokens = new int[rowsMax];
        _argmax = new int[rowsMax];
        _argmaxProbability = new float[rowsMax];
        _firstLogits = new float[_vocab];
        _firstDistribution = new float[_vocab];
        _confidence = new float[maxSequences];
        _work = new int[maxSequences];
        _drafted = new int[maxSequences];
        _limit = new int[maxSequences];
        _adapterRow = new int[maxSequences];
        _verifyRow = new int[maxSequences];
        _drafting = new int[maxSequences];

        _shallowSteps = new Action[maxSequences + 1];
        for (int r = 1; r <= maxSequences; r++)
        {
            int n = r;
            _shallowSteps[r] = () =>
            {
                _model.EmbedStaged(_shallow, n);
                _model.RunLayers(_shallow, _cache, 0, _exitLayer, n);
            };
        }
        _adapterSteps = new Action[2 * maxSequences + 1];
        for (int r = 1; r <= 2 * maxSequences; r++)
        {
            int n = r;
            _adapterSteps[r] = () => _adapter.ForwardStaged(_adapterWorkspace, _adapterCache, n, computeLogits: true, everyRow: true);
        }
        _verifySteps = new Action[maxSequences * _stride + 1];
        for (int r = 1; r <= maxSequences * _stride; r++)
        {
            int n = r;
            _verifySteps[r] = () =>
            {
                _model.RunLayers(_verify, _cache, _exitLayer, _model.Config.NumLayers, n);
                _model.ComputeLogits(_verify, 0, n);
            };
        }
    }

    public int MaxSequences => _state.Count;
    public int ContextLength => _cache.Capacity;
    public int ExitLayer => _exitLayer;

    /// <summary>γ drafts plus the target's token.</summary>
    public int MaxTokensPerStep => _stride;

    public SpeculativeStats? Stats(int sequence)
    {
        BatchDecoderArguments.CheckSequence(sequence, MaxSequences);
        return _counters[sequence].Snapshot();
    }

    public void Configure(int sequence, GenerationOptions options, DeterministicRandom random) => _state.Configure(sequence, options, random);

    public void Prefill(int sequence, ReadOnlySpan<int> promptTokens)
    {
        BatchDecoderArguments.CheckSequence(sequence, MaxSequences);
        SequenceDecoderArguments.CheckPrompt(promptTokens, _cache.Capacity);
        _state.Start(sequence);
        _adapterBehind[sequence] = false;
        _counters[sequence].Reset();

        BatchPrefill.Run(_model, _cache, _verify, sequence, promptTokens, _rowPositions, _rowSequences, (start, rows) =>
        {
            // The adapter reads the chunk's layer-ℓ states into its own cache region.
            // BatchPrefill left the chunk's positions and sequence in _rowPositions / _rowSequences.
            _model.Backend.Copy(_verify.Hidden, 0, _adapterWorkspace.Hidden, 0, rows * _hidden);
            _model.StageBatch(_adapterWorkspace, _adapterCache, _rowPositions.AsSpan(0, rows), _rowSequences.AsSpan(0, rows));
            _adapter.ForwardStaged(_adapterWorkspace, _adapterCache, rows, computeLogits: false);
        }, _exitLayer);
        _state.Lengths[sequence] = promptTokens.Length;
        var options = _state.Options[sequence];
        _state.Last[sequence] = KangarooDecoder.ChooseFromLogits(_model, _verify, options, _state.Random[sequence], _sampler, _argmax,
            _argmaxProbability, _firstLogits, _firstDistribution);
    }

    public void Round(ReadOnlySpan<int> sequences, ReadOnlySpan<int> room, Span<int> output, Span<int> counts)
    {
        BatchDecoderArguments.CheckRound(sequences, room, output, counts, MaxSequences, MaxTokensPerStep, _state.Started);
        // Work items: sequences that compute this round (the others hand out the token their prompt chose).
        int work = 0;
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            if (_state.TakeFirstToken(s, out int first))
            {
                output[i * _stride] = first;
                counts[i] = 1;
                continue;
            }
            if (_state.Lengths[s] + 1 > _cache.Capacity)
                throw new InvalidOperationException($"sequence {s}: the context holds {_cache.Capacity} positions");
            _work[work] = i;
            // Drafts are limited by γ, by the tokens the caller still wants, and by the sequence's room in the cache.
            _limit[work] = Math.Min(_maxDrafts, Math.Min(room[i] - 1, _cache.Capacity - 1 - _state.Lengths[s]));
            _drafted[work] = 0;
            work++;
        }
        if (work == 0) return;
        foreach (int w in _work.AsSpan(0, work)) _counters[sequences[w]].Draft.Start();

        // The last token of each sequence through layers [0, ℓ): row 0 of its staged states.
        for (int k = 0; k < work; k++)
        {
            int s = sequences[_work[k]];
            _rowTokens[k] = _state.Last[s];
            _rowPositions[k] = _state.Lengths[s];
            _rowSequences[k] = s;
            _drafting[k] = k;
        }
        RunShallow(sequences, work, draftStep: 0);
        Draft(sequences, work);
        foreach (int w in _work.AsSpan(0, work))
        {
            _counters[sequences[w]].Draft.Stop();
            _counters[sequences[w]].Verify.Start();
        }
        Verify(sequences, work, output, counts);
        foreach (int w in _work.AsSpan(0, work)) _counters[sequences[w]].Verify.Stop();
    }

    /// <summary>
    /// Draft steps until every sequence stopped: each step runs the adapter over the newest state of every sequence still
    /// drafting (preceded by the state it missed when a sequence's previous round accepted every draft), picks each one's
    /// draft and its confidence, and runs the drafts through layers [0, ℓ).
    /// </summary>
    private void Draft(ReadOnlySpan<int> sequences, int work)
    {
        var backend = _model.Backend;
        int drafting = 0;
        for (int k = 0; k < work; k++)
        {
            if (_limit[k] > 0) _drafting[drafting++] = k;
        }
        // A sequence that drafts nothing still lets the adapter catch up on its missed state, as the single-sequence drafter does.
        bool firstStep = true;
        for (int step = 0; drafting > 0 || firstStep; step++)
        {
            int rows = 0;
            if (firstStep)
            {
                for (int k = 0; k < work; k++)
                {
                    if (_limit[k] == 0) AddPendingRow(sequences[_work[k]], ref rows);
                }
            }
            for (int d = 0; d < drafting; d++)
            {
                int k = _drafting[d];
                int s = sequences[_work[k]];
                AddPendingRow(s, ref rows);
                _copyFrom[rows] = StagedRow(s, step);
                _rowPositions[rows] = _state.Lengths[s] + step;
                _rowSequences[rows] = s;
                _adapterRow[k] = rows++;
            }
            firstStep = false;
            if (rows == 0) break;
            backend.Upload(_copyFrom.AsSpan(0, rows), _adapterSources);
            backend.CopyRows(_staged, _adapterSources, _adapterWorkspace.Hidden, _identity, rows, _hidden);
            _model.StageBatch(_adapterWorkspace, _adapterCache, _rowPositions.AsSpan(0, rows), _rowSequences.AsSpan(0, rows));
            _model.RunRecorded(_adapterWorkspace, "batch adapter", _adapterCache, rows, _adapterSteps[rows]);
            if (drafting == 0) break;

            bool anyGreedy = false;
            for (int d = 0; d < drafting; d++) anyGreedy |= _state.Options[sequences[_work[_drafting[d]]]].IsGreedy;
            if (anyGreedy) backend.ArgmaxWithProbabilityChecked(_adapterWorkspace.Logits, rows, _vocab, _argmax, _argmaxProbability);
            for (int d = 0; d < drafting; d++)
            {
                int k = _drafting[d];
                int s = sequences[_work[k]];
                var options = _state.Options[s];
                int draft;
                if (options.IsGreedy)
                {
                    (draft, _confidence[k]) = (_argmax[_adapterRow[k]], _argmaxProbability[_adapterRow[k]]);
                }
                else
                {
                    backend.Download(_adapterWorkspace.Logits, _adapterRow[k] * _vocab, _firstLogits);
                    var q = DraftDistributions().AsSpan((s * _maxDrafts + _drafted[k]) * _vocab, _vocab);
                    _sampler.ComputeDistribution(_firstLogits, options, q);
                    draft = TokenSampler.SampleFrom(q, _state.Random[s]);
                    _confidence[k] = TensorPrimitives.Max(q);
                }
                _drafts[s * _maxDrafts + _drafted[k]] = draft;
                _drafted[k]++;
                _rowTokens[d] = draft;
                _rowPositions[d] = _state.Lengths[s] + _drafted[k];
                _rowSequences[d] = s;
            }
            // The drafts through layers [0, ℓ) (each into its sequence's next staged row); sequences stop at low confidence or their limit.
            RunShallow(sequences, drafting, draftStep: -1);
            int kept = 0;
            for (int d = 0; d < drafting; d++)
            {
                int k = _drafting[d];
                if (_confidence[k] >= _threshold && _drafted[k] < _limit[k]) _drafting[kept++] = k;
            }
            // A draft step costs nearly as much for a few sequences as for all: stragglers do not hold the batch.
            drafting = kept < _batchDraftStop * work ? 0 : kept;
        }
    }

    /// <summary>Queues the state the adapter missed last round (every draft was accepted) as an adapter row before the sequence's newest.</summary>
    private void AddPendingRow(int sequence, ref int rows)
    {
        if (!_adapterBehind[sequence]) return;
        _copyFrom[rows] = PendingRow(sequence);
        _rowPositions[rows] = _state.Lengths[sequence] - 1;
        _rowSequences[rows] = sequence;
        rows++;
        _adapterBehind[sequence] = false;
    }

    /// <summary>
    /// Layers [0, ℓ) over the staged rows (_rowTokens/_rowPositions/_rowSequences [0, rows)); row r's layer-ℓ state goes to
    /// its sequence's staged row: <paramref name="draftStep"/> for every row, or (−1) its number of drafts so far.
    /// </summary>
    private void RunShallow(ReadOnlySpan<int> sequences, int rows, int draftStep)
    {
        _model.StageBatch(_shallow, _cache, _rowPositions.AsSpan(0, rows), _rowSequences.AsSpan(0, rows), _rowTokens.AsSpan(0, rows));
        _model.RunRecorded(_shallow, "batch shallow", _cache, rows, _shallowSteps[rows]);
        for (int r = 0; r < rows; r++)
            _copyTo[r] = StagedRow(_rowSequences[r], draftStep >= 0 ? draftStep : _drafted[_drafting[r]]);
        _model.Backend.Upload(_copyTo.AsSpan(0, rows), _shallowTargets);
        _model.Backend.CopyRows(_shallow.Hidden, _identity, _staged, _shallowTargets, rows, _hidden);
    }

    /// <summary>Where sequence s keeps its round's layer-ℓ state j (0: the last token, j: draft j).</summary>
    private int StagedRow(int sequence, int j) => sequence * (_stride + 1) + 1 + j;

    /// <summary>Where sequence s keeps the state its adapter has not read yet.</summary>
    private int PendingRow(int sequence) => sequence * (_stride + 1);

    /// <summary>One pass of layers [ℓ, L) over every sequence's last token and drafts, then each sequence's verdict.</summary>
    private void Verify(ReadOnlySpan<int> sequences, int work, Span<int> output, Span<int> counts)
    {
        var backend = _model.Backend;
        int rows = 0;
        bool anySampling = false;
        for (int k = 0; k < work; k++)
        {
            int s = sequences[_work[k]];
            int n = _drafted[k] + 1;
            _verifyRow[k] = rows;
            for (int j = 0; j < n; j++)
            {
                _copyFrom[rows + j] = StagedRow(s, j);
                _rowPositions[rows + j] = _state.Lengths[s] + j;
                _rowSequences[rows + j] = s;
            }
            rows += n;
            anySampling |= !_state.Options[s].IsGreedy;
        }
        backend.Upload(_copyFrom.AsSpan(0, rows), _verifySources);
        backend.CopyRows(_staged, _verifySources, _verify.Hidden, _identity, rows, _hidden);
        _model.StageBatch(_verify, _cache, _rowPositions.AsSpan(0, rows), _rowSequences.AsSpan(0, rows));
        _model.RunRecorded(_verify, "batch verify", _cache, rows, _verifySteps[rows]);
        backend.ArgmaxWithProbabilityChecked(_verify.Logits, rows, _vocab, _argmax, _argmaxProbability);
        float[] logits = [];
        if (anySampling)
        {
            logits = LogitsScratch(rows);
            backend.Download(_verify.Logits, 0, logits.AsSpan(0, rows * _vocab));
        }

        int pending = 0;
        for (int k = 0; k < work; k++)
        {
            int i = _work[k];
            int s = sequences[i];
            int drafted = _drafted[k];
            var options = _state.Options[s];
            var drafts = _drafts.AsSpan(s * _maxDrafts, drafted);
            var destination = output.Slice(i * _stride, _stride);
            int accepted = options.IsGreedy
                ? DraftVerifier.VerifyGreedy(drafts, _argmax.AsSpan(_verifyRow[k], drafted + 1), destination)
                : _verifier.VerifySampling(drafts, DraftDistributions().AsSpan(s * _maxDrafts * _vocab, drafted * _vocab),
                    logits.AsSpan(_verifyRow[k] * _vocab, (drafted + 1) * _vocab), options, _state.Random[s], destination);
            counts[i] = accepted + 1;
            // Every draft accepted: the adapter has not read the last draft's state; keep it for the next round.
            if (accepted == drafted)
            {
                _copyFrom[pending] = StagedRow(s, drafted);
                _copyTo[pending++] = PendingRow(s);
                _adapterBehind[s] = true;
            }
            _state.Lengths[s] += accepted + 1;
            _state.Last[s] = destination[accepted];
            _counters[s].Round(drafted, accepted);
        }
        if (pending == 0) return;
        backend.Upload(_copyFrom.AsSpan(0, pending), _pendingSources);
        backend.Upload(_copyTo.AsSpan(0, pending), _pendingTargets);
        backend.CopyRows(_staged, _pendingSources, _staged, _pendingTargets, pending, _hidden);
    }

    private float[] _logitsScratch = [];
    private float[] LogitsScratch(int rows)
    {
        if (_logitsScratch.Length < rows * _vocab) _logitsScratch = new float[Math.Max(rows, _stride) * _vocab];
        return _logitsScratch;
    }

    private float[] _draftDistributionsScratch = [];
    /// <summary>Sampling only: each sequence's draft distributions (allocated on first use).</summary>
    private float[] DraftDistributions()
    {
        if (_draftDistributionsScratch.Length == 0) _draftDistributionsScratch = new float[Math.Max(1, MaxSequences * _maxDrafts * _vocab)];
        return _draftDistributionsScratch;
    }

    public void Dispose()
    {
        _cache.Dispose();
        _adapterCache.Dispose();
        _shallow.Dispose();
        _adapterWorkspace.Dispose();
        _verify.Dispose();
        _staged.Dispose();
        foreach (var indices in new[] { _identity, _shallowTargets, _adapterSources, _verifySources, _pendingSources, _pendingTargets })
            indices.Dispose();
    }
}
