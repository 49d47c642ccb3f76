using Kangaroo.Model;
using Kangaroo.Sampling;
using Kangaroo.Speculative;

namespace Kangaroo.Generation;

/// <summary>
/// The one decoding scheduler. Every decode is a batch: sequences live in slots (regions of one shared KV cache) and a
/// <see cref="Round"/> advances each listed sequence by one step of its own through forward passes that serve them all;
/// a single generation is slot 0 of a batch of one. Without a proposer a step is one token (vanilla decoding: one pass
/// of every layer over one row per sequence). With one (<see cref="IDraftProposer"/>: Kangaroo's chain or tree) a step is
/// a round: the proposer drafts for every sequence, ONE pass of layers [ℓ, L) verifies every node of every sequence, the
/// <see cref="DraftVerifier"/> keeps each sequence's accepted path plus one token of the target, and the path is packed
/// into consecutive positions. Row invariance gives every sequence the bits it would get alone, so greedy output is
/// vanilla greedy's whatever the batch, proposer or prefix reuse.
/// </summary>
internal sealed class BatchScheduler : IDisposable
{
    private readonly LlamaModel _model;
    private readonly IDraftProposer? _proposer;
    private readonly KvCache _cache;
    private readonly ForwardWorkspace _verify;
    private readonly SequenceSlots _slots;
    private readonly TokenChooser _chooser;
    private readonly DraftVerifier _verifier;
    private readonly DraftRound? _round;
    private readonly ForwardPass _step;
    private readonly int _layers, _prefillChunk;
    private readonly int[] _work, _tokens, _path, _from, _to;
    private readonly float[] _confidence;
    private readonly SequenceSampling[] _rowSampling;

    /// <param name="proposer">Drafts for speculative rounds (owned); null: vanilla decoding.</param>
    /// <param name="prefillChunk">Rows per forward pass while processing a prompt.</param>
    public BatchScheduler(LlamaModel model, int maxSequences, int contextLength, IDraftProposer? proposer = null, int prefillChunk = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(prefillChunk, 1);
        _model = model;
        _proposer = proposer;
        _layers = model.Config.NumLayers;
        int vocab = model.Config.VocabSize;
        int nodes = proposer?.MaxNodes ?? 1;
        _prefillChunk = Math.Min(prefillChunk, contextLength);
        _cache = model.CreateCache(contextLength, maxSequences);
        _verify = model.CreateWorkspace(Math.Max(maxSequences * nodes, _prefillChunk), proposer?.VerifyWindow ?? 0);
        _slots = new SequenceSlots(maxSequences);
        _chooser = new TokenChooser(model.Backend, vocab);
        _verifier = new DraftVerifier(vocab, proposer?.MaxDraws ?? 1);
        _step = proposer is null ? ForwardPass.Full(_layers) : new ForwardPass(false, proposer.ExitLayer, _layers, 0);
        if (proposer is not null)
        {
            _round = new DraftRound(maxSequences, () => new SequenceDraft(nodes, proposer.MaxDepth, proposer.MaxDraws, vocab))
            {
                Cache = _cache,
                Verify = _verify,
            };
        }
        _work = new int[maxSequences];
        _tokens = new int[maxSequences];
        _confidence = new float[maxSequences];
        _rowSampling = new SequenceSampling[maxSequences];
        (_path, _from, _to) = (new int[nodes], new int[nodes], new int[nodes]);
    }

    /// <summary>Sequence slots: ids [0, MaxSequences).</summary>
    public int MaxSequences => _slots.Count;

    /// <summary>Positions each sequence's cache region holds.</summary>
    public int ContextLength => _cache.Capacity;

    /// <summary>Most tokens one round gives one sequence: a path of γ drafts plus the target's token, or 1.</summary>
    public int MaxTokensPerStep => _proposer is null ? 1 : _proposer.MaxDepth + 1;

    /// <summary>ℓ of the proposer; null without one.</summary>
    public int? ExitLayer => _proposer?.ExitLayer;

    internal DraftVerifier Verifier => _verifier;

    /// <summary>Drafting and verification figures of the sequence in a slot; null without a proposer.</summary>
    public SpeculativeStats? Stats(int sequence)
    {
        _slots.CheckSequence(sequence);
        return _proposer is null || !_slots.Speculates[sequence] ? null : _slots.Counters[sequence].Snapshot();
    }

    /// <summary>Sampling settings of the sequence about to start in <paramref name="sequence"/> (before its <see cref="Prefill"/>).</summary>
    /// <param name="drafts">With a proposer: whether the sequence drafts; one that does not takes one token per round, a plain decode step
    /// split at ℓ, in the same passes as the others.</param>
    public void Configure(int sequence, GenerationOptions options, DeterministicRandom random, bool drafts = true) =>
        _slots.Configure(sequence, options, random, drafts);

    /// <summary>
    /// Starts a sequence in slot <paramref name="sequence"/>: keeps the longest prefix of the prompt that the slot's cache
    /// still holds (at least one token runs, for its logits; row invariance makes this bit-identical to starting from
    /// scratch), processes the rest and chooses the first token, which the sequence's next round returns.
    /// </summary>
    public void Prefill(int sequence, ReadOnlySpan<int> promptTokens)
    {
        _slots.CheckSequence(sequence);
        if (promptTokens.IsEmpty) throw new ArgumentException("the prompt has no tokens", nameof(promptTokens));
        if (promptTokens.Length > _cache.Capacity)
            throw new InvalidRequestException($"the prompt has {promptTokens.Length} tokens; the context holds {_cache.Capacity}");
        var cached = _slots.Cached(sequence);
        int limit = Math.Min(cached.Count, promptTokens.Length - 1);
        if (_proposer is not null) limit = Math.Min(limit, _proposer.ReusablePositions(sequence, cached.Count));
        int kept = 0;
        while (kept < limit && cached[kept] == promptTokens[kept]) kept++;
        _slots.Start(sequence, kept);
        _proposer?.Start(sequence, kept);

        int region = sequence * _cache.Capacity;
        for (int start = kept; start < promptTokens.Length; start += _prefillChunk)
        {
            int count = Math.Min(_prefillChunk, promptTokens.Length - start);
            var rows = _verify.Rows.Reset(withTokens: true);
            rows.AddRange(sequence, region, start, count, promptTokens.Slice(start, count));
            _model.Stage(_verify, _cache, rows);
            _model.EmbedStaged(_verify, count);
            int split = _proposer?.ExitLayer ?? _layers;
            _model.RunLayers(_verify, _cache, 0, split, count);
            if (_proposer is not null)
            {
                _proposer.ReadPrompt(_verify, rows);
                _model.RunLayers(_verify, _cache, split, _layers, count);
            }
            if (start + count == promptTokens.Length) _model.ComputeLogits(_verify, count - 1, 1);
        }
        cached.AddRange(promptTokens[kept..]);
        _rowSampling[0] = _slots.Sampling[sequence];
        _chooser.Choose(_verify.Logits, 1, _rowSampling, _tokens, _confidence);
        _slots.Last[sequence] = _tokens[0];
    }

    /// <summary>
    /// One round for the listed (distinct, started) sequences: sequence <c>sequences[i]</c> takes at most
    /// <c>room[i]</c> (≥ 1) tokens, written to <c>output[i · MaxTokensPerStep ..]</c>, their count to <c>counts[i]</c>.
    /// After n tokens a sequence holds at most prompt + n − 1 positions, so a caller that never asks past
    /// prompt + n ≤ capacity + 1 never overflows its region.
    /// </summary>
    public void Round(ReadOnlySpan<int> sequences, ReadOnlySpan<int> room, Span<int> output, Span<int> counts)
    {
        _slots.CheckRound(sequences, room, output, counts, MaxTokensPerStep);
        int stride = MaxTokensPerStep, work = 0;
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            if (_slots.TakeFirstToken(s, out int first))
            {
                output[i * stride] = first;
                counts[i] = 1;
                continue;
            }
            if (_slots.Length(s) + 1 > _cache.Capacity)
                throw new InvalidOperationException($"sequence {s}: the context holds {_cache.Capacity} positions");
            _work[work++] = i;
        }
        if (work == 0) return;
        if (_round is null) DecodeStep(sequences, work, output, counts);
        else SpeculativeRound(sequences, room, work, output, counts);
    }

    /// <summary>Vanilla: one row per sequence through every layer, one token each.</summary>
    private void DecodeStep(ReadOnlySpan<int> sequences, int work, Span<int> output, Span<int> counts)
    {
        var rows = _verify.Rows.Reset(withTokens: true);
        for (int k = 0; k < work; k++)
        {
            int s = sequences[_work[k]], position = _slots.Length(s);
            rows.Add(s, position, s * _cache.Capacity + position, _slots.Last[s]);
            _rowSampling[k] = _slots.Sampling[s];
        }
        _model.Stage(_verify, _cache, rows);
        _model.Run(_verify, _cache, _step);
        _chooser.Choose(_verify.Logits, work, _rowSampling, _tokens, _confidence);
        for (int k = 0; k < work; k++)
        {
            int i = _work[k], s = sequences[i];
            _slots.Cached(s).Add(_slots.Last[s]);
            _slots.Last[s] = output[i * MaxTokensPerStep] = _tokens[k];
            counts[i] = 1;
        }
    }

    /// <summary>Kangaroo: the proposer drafts for every sequence, one pass verifies all their nodes, each keeps its accepted path.</summary>
    private void SpeculativeRound(ReadOnlySpan<int> sequences, ReadOnlySpan<int> room, int work, Span<int> output, Span<int> counts)
    {
        var round = _round!;
        var proposer = _proposer!;
        round.Count = work;
        for (int k = 0; k < work; k++)
        {
            int i = _work[k], s = sequences[i], position = _slots.Length(s);
            var draft = round.Drafts[k];
            draft.Sequence = s;
            draft.Position = position;
            draft.RootToken = _slots.Last[s];
            // Drafts are limited by γ, by the tokens the caller still wants, and by the sequence's room in the cache; a
            // sequence that does not speculate drafts nothing, so its round is a plain decode step split at ℓ.
            draft.DepthLimit = !_slots.Speculates[s] ? 0 : Math.Min(proposer.MaxDepth, Math.Min(room[i] - 1, _cache.Capacity - 1 - position));
            draft.NodeLimit = Math.Min(proposer.MaxNodes, _cache.Capacity - position);
            draft.Sampling = _slots.Sampling[s];
            _slots.Counters[s].Draft.Start();
        }
        proposer.Propose(round);

        var rows = _verify.Rows.Reset(proposer.VerifyWindow);
        bool anyGreedy = false;
        for (int k = 0; k < work; k++)
        {
            var draft = round.Drafts[k];
            _slots.Counters[draft.Sequence].Draft.Stop();
            _slots.Counters[draft.Sequence].Verify.Start();
            draft.Tree.AddRows(rows, draft.Sequence, draft.Sequence * _cache.Capacity, 0, draft.Tree.Count);
            anyGreedy |= draft.Sampling.IsGreedy;
        }
        _model.Stage(_verify, _cache, rows, tokens: false);
        _model.Run(_verify, _cache, _step);
        ReadOnlySpan<int> targets = anyGreedy ? _chooser.Argmax(_verify.Logits, rows.Count, out _) : default;

        for (int k = 0; k < work; k++)
        {
            int i = _work[k];
            var draft = round.Drafts[k];
            var tree = draft.Tree;
            int s = draft.Sequence, next;
            int length = draft.Sampling.IsGreedy
                ? DraftVerifier.AcceptGreedy(draft, targets.Slice(draft.VerifyRow, tree.Count), _path, out next)
                : _verifier.AcceptSampled(draft, _chooser.Download(_verify.Logits, draft.VerifyRow, tree.Count), draft.Sampling, _path, out next);
            var path = _path.AsSpan(0, length);
            var destination = output.Slice(i * MaxTokensPerStep, MaxTokensPerStep);
            for (int j = 1; j < length; j++) destination[j - 1] = tree.Token(path[j]);
            destination[length - 1] = next;
            counts[i] = length;

            int moves = TreePacking.Moves(draft, path, s * _cache.Capacity, _from, _to);
            if (moves > 0) _model.Backend.MoveKvSlots(_cache.Storage, _from.AsSpan(0, moves), _to.AsSpan(0, moves));
            proposer.Accept(draft, path);

            var cached = _slots.Cached(s);
            foreach (int node in path) cached.Add(tree.Token(node));
            _slots.Last[s] = next;
            _slots.Counters[s].Verify.Stop();
            _slots.Counters[s].Round(tree.Count - 1, length - 1);
        }
    }

    public void Dispose()
    {
        _proposer?.Dispose();
        _cache.Dispose();
        _verify.Dispose();
    }
}
