using Kangaroo.Backends;
using Kangaroo.Generation;
using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>
/// The proposer: Kangaroo's self-draft model — base layers [0, ℓ) (first early exit), the adapter and the base LM head —
/// drafting one token at a time until the confidence stop (second early exit) or γ drafts. The layer-ℓ hidden state of
/// every drafted row lands in the verifier's input rows, so verification resumes at layer ℓ and never recomputes the
/// shallow layers. Owns the adapter's KV cache and keeps it in step with the base cache.
/// </summary>
internal sealed class KangarooDrafter : IDisposable
{
    private readonly LlamaModel _model;
    private readonly KangarooAdapter _adapter;
    private readonly int _exitLayer;
    private readonly ForwardWorkspace _shallow;
    private readonly ForwardWorkspace _adapterWorkspace;
    private readonly ComputeBuffer _pendingHidden;
    private readonly TokenSampler _sampler;
    private readonly float[] _logits;
    private readonly int[] _best = new int[1];
    private readonly float[] _bestProbability = new float[1];
    private bool _adapterBehind;
    private readonly KvCache _cache;
    private readonly Action _shallowStep;
    private readonly Action[] _adapterSteps;   // by (rows − 1) · 2 + (logits ? 1 : 0)

    /// <param name="cache">The base model's cache: drafting writes layers [0, ℓ) of the drafted positions into it.</param>
    public KangarooDrafter(LlamaModel model, KangarooAdapter adapter, int exitLayer, KvCache cache, int maxRows)
    {
        _model = model;
        _adapter = adapter;
        _exitLayer = exitLayer;
        _cache = cache;
        AdapterCache = adapter.CreateCache(cache.Capacity);
        _shallow = model.CreateWorkspace(1);
        _adapterWorkspace = adapter.CreateWorkspace(Math.Max(2, maxRows));
        _pendingHidden = model.Backend.Allocate(model.Config.HiddenSize);
        _sampler = new TokenSampler(model.Config.VocabSize);
        _logits = new float[model.Config.VocabSize];
        _shallowStep = () =>
        {
            _model.EmbedStaged(_shallow, 1);
            _model.RunLayers(_shallow, _cache, 0, _exitLayer, 1);
        };
        _adapterSteps = new Action[4];
        for (int rows = 1; rows <= 2; rows++)
        {
            foreach (bool logits in new[] { false, true })
            {
                int r = rows;
                bool l = logits;
                _adapterSteps[(rows - 1) * 2 + (logits ? 1 : 0)] = () => _adapter.ForwardStaged(_adapterWorkspace, AdapterCache, r, l);
            }
        }
    }

    /// <summary>The adapter over <paramref name="rows"/> (1 or 2) rows of its workspace at <paramref name="start"/>, recorded where the backend can.</summary>
    private void RunAdapter(int start, int rows, bool computeLogits)
    {
        _model.SetPositions(_adapterWorkspace, start, rows);
        _model.RunRecorded(_adapterWorkspace, computeLogits ? "adapter+head" : "adapter", AdapterCache, rows,
            _adapterSteps[(rows - 1) * 2 + (computeLogits ? 1 : 0)]);
    }

    public KvCache AdapterCache { get; }

    public void Reset()
    {
        AdapterCache.Clear();
        _adapterBehind = false;
    }

    /// <summary>Prompt processing: the adapter reads the layer-ℓ states of a prompt chunk (rows of <paramref name="ws"/>.Hidden).</summary>
    public void PrefillChunk(ForwardWorkspace ws, int startPosition, int rows) =>
        _adapter.Prefill(ws, _adapterWorkspace, AdapterCache, startPosition, rows);

    /// <summary>
    /// Drafts from <paramref name="lastToken"/> at <paramref name="position"/> (the first position not in the cache).
    /// Row i of <paramref name="verifyInput"/>.Hidden receives the layer-ℓ state of position + i (row 0: lastToken,
    /// row i: draft i); base layers [0, ℓ) of those positions are written to <paramref name="cache"/>. Sampling mode
    /// stores each draft's distribution in <paramref name="draftDistributions"/>. Returns the number of drafts.
    /// </summary>
    public int Draft(int lastToken, int position, int maxDrafts, float threshold, ForwardWorkspace verifyInput,
        Span<int> drafts, GenerationOptions options, DeterministicRandom random, Span<float> draftDistributions)
    {
        int hidden = _model.Config.HiddenSize;
        int vocab = _model.Config.VocabSize;
        var backend = _model.Backend;
        RunShallow(lastToken, position, verifyInput, row: 0);

        if (maxDrafts == 0 && _adapterBehind) CatchUp(position);
        int count = 0;
        while (count < maxDrafts)
        {
            // The adapter reads row `count`, preceded by the state it missed last round when every draft was accepted.
            int rows = 0, start = position + count;
            if (_adapterBehind)
            {
                backend.Copy(_pendingHidden, 0, _adapterWorkspace.Hidden, 0, hidden);
                rows = 1;
                start--;
                _adapterBehind = false;
            }
            backend.Copy(verifyInput.Hidden, count * hidden, _adapterWorkspace.Hidden, rows * hidden, hidden);
            rows++;
            RunAdapter(start, rows, computeLogits: true);
            AdapterCache.Advance(rows);

            int draft;
            float confidence;
            if (options.IsGreedy)
            {
                backend.ArgmaxWithProbabilityChecked(_adapterWorkspace.Logits, 1, vocab, _best, _bestProbability);
                (draft, confidence) = (_best[0], _bestProbability[0]);
            }
            else
            {
                backend.Download(_adapterWorkspace.Logits, 0, _logits);
                var q = draftDistributions.Slice(count * vocab, vocab);
                _sampler.ComputeDistribution(_logits, options, q);
                draft = TokenSampler.SampleFrom(q, random);
                confidence = MaxOf(q);
            }
            drafts[count++] = draft;
            RunShallow(draft, position + count, verifyInput, row: count);
            if (confidence < threshold) break;
        }
        return count;
    }

    /// <summary>
    /// After verification accepted <paramref name="accepted"/> of <paramref name="drafted"/> drafts: cuts the adapter cache
    /// back to the accepted sequence. If every draft was accepted the adapter never saw the last draft's state: keep it
    /// (row <paramref name="drafted"/> of the verifier's input, saved before verification overwrote it) for the next round.
    /// </summary>
    public void Commit(int position, int drafted, int accepted)
    {
        if (accepted == drafted)
        {
            _adapterBehind = true;
            return;
        }
        AdapterCache.Truncate(position + accepted + 1);
    }

    /// <summary>Saves the last drafted row's layer-ℓ state before the deep layers overwrite the verifier's input.</summary>
    public void SaveLastRow(ForwardWorkspace verifyInput, int row) =>
        _model.Backend.Copy(verifyInput.Hidden, row * _model.Config.HiddenSize, _pendingHidden, 0, _model.Config.HiddenSize);

    private void CatchUp(int position)
    {
        _model.Backend.Copy(_pendingHidden, 0, _adapterWorkspace.Hidden, 0, _model.Config.HiddenSize);
        RunAdapter(position - 1, 1, computeLogits: false);
        AdapterCache.Advance(1);
        _adapterBehind = false;
    }

    private void RunShallow(int token, int position, ForwardWorkspace verifyInput, int row)
    {
        _model.StageTokens(_shallow, [token], position);
        _model.RunRecorded(_shallow, "shallow", _cache, 1, _shallowStep);
        int hidden = _model.Config.HiddenSize;
        _model.Backend.Copy(_shallow.Hidden, 0, verifyInput.Hidden, row * hidden, hidden);
    }

    private static float MaxOf(ReadOnlySpan<float> values)
    {
        float max = 0;
        foreach (float v in values) max = Math.Max(max, v);
        return max;
    }

    public void Dispose()
    {
        AdapterCache.Dispose();
        _shallow.Dispose();
        _adapterWorkspace.Dispose();
        _pendingHidden.Dispose();
    }
}
