using System.Diagnostics;
using System.Threading.Channels;
using Kangaroo.Generation;
using Kangaroo.Sampling;

namespace Kangaroo.Serving;

/// <summary>
/// Continuous batching on one model: requests from any thread join the running batch between rounds. One engine thread
/// owns the scheduler (<see cref="BatchScheduler"/>): each iteration it admits queued requests into free slots (processing
/// their prompts), runs one round for every running sequence — Kangaroo and plain requests together, the plain ones
/// drafting nothing — and hands each request its new text. A finished or cancelled request frees its slot for the next.
/// Row invariance makes every request's greedy tokens those of a generation alone, whatever it shares its rounds with.
/// Thread-safe.
/// </summary>
public sealed class ContinuousBatcher : IAsyncDisposable, IDisposable
{
    private static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(10);

    private readonly LanguageModel _model;
    private readonly SchedulerCache _schedulers;
    private readonly BatchScheduler _scheduler;
    private readonly ContinuousBatchingOptions _options;
    private readonly LinkedList<BatchedGeneration> _queue = new();
    private readonly AutoResetEvent _wake = new(false);
    private readonly CancellationTokenSource _abort = new();
    private readonly Thread _engine;
    private readonly Queue<(long Ticks, int Tokens)> _recent = new();
    private readonly object _statsLock = new();
    private long _finished, _cancelled, _failed, _tokens, _rounds, _drafted, _accepted, _speculativeRounds, _recentTokens;
    private volatile bool _stopping;
    private int _active, _occupied;
    private long _nextId;

    public ContinuousBatcher(LanguageModel model, ContinuousBatchingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new ContinuousBatchingOptions();
        options.Validate();
        int context = options.ContextLength ?? model.ContextLength;
        model.CheckContext(context);
        _model = model;
        _options = options;
        ContextLength = context;
        _schedulers = new SchedulerCache(model, options.MaxSequences, context);
        _scheduler = _schedulers.For(options.Speculation);
        _engine = new Thread(RunEngine) { IsBackground = true, Name = "kangaroo-batcher" };
        _engine.Start();
    }

    public LanguageModel Model => _model;
    public int MaxSequences => _options.MaxSequences;
    public int ContextLength { get; }
    public int MaxQueuedRequests => _options.MaxQueuedRequests;

    /// <summary>The Kangaroo settings a request may choose; null when the engine decodes plainly only.</summary>
    public Speculative.KangarooOptions? Speculation => _options.Speculation;

    /// <summary>Requests waiting for a slot.</summary>
    public int QueueDepth
    {
        get { lock (_queue) return _queue.Count; }
    }

    /// <summary>Sequences in the running batch.</summary>
    public int ActiveSequences => Volatile.Read(ref _active);

    /// <summary>Whether <see cref="StopAsync"/> has begun: new requests are refused.</summary>
    public bool IsStopping => _stopping;

    public BatcherStatistics Statistics
    {
        get
        {
            lock (_statsLock)
            {
                Prune(Stopwatch.GetTimestamp());
                double seconds = _recent.Count == 0 ? 1 : Math.Max(Stopwatch.GetElapsedTime(_recent.Peek().Ticks).TotalSeconds, 1);
                return new BatcherStatistics(_finished, _cancelled, _failed, _tokens, _rounds, _drafted, _accepted, _speculativeRounds,
                    _recentTokens / seconds);
            }
        }
    }

    /// <summary>
    /// Queues a completion of <paramref name="prompt"/>. The prompt is tokenized and checked here: an invalid request
    /// throws <see cref="InvalidRequestException"/>, a full queue or a stopping engine <see cref="ServerBusyException"/>.
    /// Cancelling <paramref name="cancellationToken"/> ends the request (<see cref="StopReason.Cancelled"/>) and frees its slot.
    /// </summary>
    public BatchedGeneration Submit(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new GenerationOptions();
        options.Validate();
        return Submit(_model.Tokenizer.Encode(prompt, options.AddBos ?? _model.Tokenizer.AddBosToken), options, cancellationToken);
    }

    /// <summary><see cref="Submit(string, GenerationOptions?, CancellationToken)"/> of a prompt already tokenized.</summary>
    public BatchedGeneration Submit(IReadOnlyList<int> promptTokens, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        options ??= new GenerationOptions();
        options.Validate();
        if (promptTokens.Count == 0) throw new InvalidRequestException("the prompt is empty (no tokens); give some text");
        if (promptTokens.Count >= ContextLength)
            throw new InvalidRequestException($"the prompt has {promptTokens.Count} tokens but the context holds {ContextLength}: leave room for at least one new token");
        int vocabulary = _model.Config.VocabSize;
        foreach (int token in promptTokens)
        {
            if ((uint)token >= (uint)vocabulary) throw new InvalidRequestException($"prompt token {token} is outside the vocabulary [0, {vocabulary})");
        }
        if (options.Speculation is { } speculation && speculation != _options.Speculation)
        {
            throw new InvalidRequestException(_options.Speculation is null
                ? "Kangaroo decoding is not enabled on this engine (start it with Kangaroo settings and an adapter)"
                : $"this engine drafts with {_options.Speculation}; a request chooses those settings or none, not {speculation}");
        }
        var request = new BatchedGeneration(Interlocked.Increment(ref _nextId), promptTokens.ToArray(), options,
            CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _abort.Token));
        // Registered before the engine can see the request, which disposes the registration when the request ends.
        request.Registration = request.Cancellation.Token.Register(static wake => ((AutoResetEvent)wake!).Set(), _wake);
        lock (_queue)
        {
            // Free slots take requests through the queue too: the limit is on those that must wait.
            string? refusal = _stopping ? "the engine is shutting down"
                : _queue.Count + Volatile.Read(ref _occupied) >= MaxSequences + _options.MaxQueuedRequests
                    ? $"all {MaxSequences} sequences are busy and {_queue.Count} requests wait: try again later"
                : null;
            if (refusal is null) _queue.AddLast(request);
            else
            {
                request.Registration.Dispose();
                request.Cancellation.Dispose();
                throw new ServerBusyException(refusal, shuttingDown: _stopping);
            }
        }
        _wake.Set();
        return request;
    }

    /// <summary>
    /// Stops taking requests, lets running and queued ones finish for up to <paramref name="drain"/>, then cancels the rest
    /// (they end <see cref="StopReason.Cancelled"/> with the text they have) and waits for the engine to stop.
    /// </summary>
    public async Task StopAsync(TimeSpan drain)
    {
        lock (_queue) _stopping = true;
        _wake.Set();
        var stopped = Task.Run(() => _engine.Join());
        if (drain > TimeSpan.Zero) await Task.WhenAny(stopped, Task.Delay(drain)).ConfigureAwait(false);
        if (!stopped.IsCompleted)
        {
            _abort.Cancel();
            _wake.Set();
        }
        await stopped.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
        _schedulers.Dispose();
        _wake.Dispose();
        _abort.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private void RunEngine()
    {
        int slots = _scheduler.MaxSequences, stride = _scheduler.MaxTokensPerStep;
        var running = new BatchedGeneration?[slots];
        var members = new SchedulerSlot[slots];
        for (int s = 0; s < slots; s++) members[s] = new SchedulerSlot(_scheduler, s);
        var sequences = new int[slots];
        var room = new int[slots];
        var counts = new int[slots];
        var output = new int[slots * stride];
        while (true)
        {
            DropCancelledWhileQueued();
            for (int s = 0; s < slots; s++)
            {
                while (running[s] is null && TakeQueued() is { } request)
                {
                    if (Admit(request, s, members[s])) running[s] = request;
                    else Interlocked.Decrement(ref _occupied);
                }
            }
            int active = 0;
            for (int s = 0; s < slots; s++)
            {
                if (running[s] is not { } request) continue;
                sequences[active] = s;
                room[active++] = request.Run!.NextStepRoom;
            }
            Volatile.Write(ref _active, active);
            if (active == 0)
            {
                if (_stopping && QueueDepth == 0) return;
                _wake.WaitOne();
                continue;
            }

            try
            {
                _scheduler.Round(sequences.AsSpan(0, active), room.AsSpan(0, active), output, counts.AsSpan(0, active));
            }
            catch (Exception e)
            {
                // The round's passes served every running sequence: none of them can go on.
                for (int a = 0; a < active; a++)
                {
                    int s = sequences[a];
                    Fail(running[s]!, e);
                    running[s] = null;
                    Interlocked.Decrement(ref _occupied);
                }
                continue;
            }
            lock (_statsLock) _rounds++;
            for (int a = 0; a < active; a++)
            {
                int s = sequences[a];
                var request = running[s]!;
                members[s].Deliver(output.AsSpan(a * stride, counts[a]));
                if (Step(request)) continue;
                running[s] = null;
                Interlocked.Decrement(ref _occupied);
            }
        }
    }

    /// <summary>Starts a request in a slot: its prompt pass and first token. False when it ended there (cancelled, one token, failed).</summary>
    private bool Admit(BatchedGeneration request, int slot, SchedulerSlot member)
    {
        if (request.Cancellation.IsCancellationRequested)
        {
            // Not started: no prompt pass for a result that would be empty anyway.
            Complete(request, GenerationResult.CancelledBeforeStart(request.PromptTokens));
            return false;
        }
        try
        {
            var options = request.Options;
            _scheduler.Configure(slot, options, new DeterministicRandom(options.Seed ?? DeterministicRandom.RandomSeed()),
                drafts: options.Speculation is not null);
            request.Run = new GenerationRun(member, _model.Tokenizer, request.PromptTokens, options, _model.EndOfSequenceIds, ContextLength,
                request.Cancellation.Token)
            {
                ExplainNonFinite = _model.ExplainNonFinite,
            };
        }
        catch (Exception e)
        {
            Fail(request, e);
            return false;
        }
        return Step(request);
    }

    /// <summary>One step of the request's generation: its text so far goes out; false once it has finished.</summary>
    private bool Step(BatchedGeneration request)
    {
        var run = request.Run!;
        int before = run.GeneratedCount;
        try
        {
            run.Step(out string piece);
            if (piece.Length > 0) request.Writer.TryWrite(piece);
        }
        catch (Exception e)
        {
            Fail(request, e);
            return false;
        }
        Count(run.GeneratedCount - before);
        if (!run.IsFinished) return true;
        Complete(request, run.Result);
        return false;
    }

    private void Complete(BatchedGeneration request, GenerationResult result)
    {
        lock (_statsLock)
        {
            _finished++;
            if (result.StopReason == StopReason.Cancelled) _cancelled++;
            if (result.Speculation is { } s)
            {
                _drafted += s.Drafted;
                _accepted += s.Accepted;
                _speculativeRounds += s.Rounds;
            }
        }
        request.Registration.Dispose();
        request.Finish(result);
    }

    private void Fail(BatchedGeneration request, Exception e)
    {
        lock (_statsLock) _failed++;
        request.Registration.Dispose();
        request.Finish(e);
    }

    /// <summary>The oldest queued request, counted as occupying a slot from here until it ends.</summary>
    private BatchedGeneration? TakeQueued()
    {
        lock (_queue)
        {
            if (_queue.First is not { } first) return null;
            _queue.RemoveFirst();
            Interlocked.Increment(ref _occupied);
            return first.Value;
        }
    }

    /// <summary>Queued requests whose callers gave up leave the queue at once, not when a slot frees.</summary>
    private void DropCancelledWhileQueued()
    {
        List<BatchedGeneration>? dropped = null;
        lock (_queue)
        {
            for (var node = _queue.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Cancellation.IsCancellationRequested)
                {
                    _queue.Remove(node);
                    (dropped ??= []).Add(node.Value);
                }
                node = next;
            }
        }
        if (dropped is null) return;
        foreach (var request in dropped)
        {
            Complete(request, GenerationResult.CancelledBeforeStart(request.PromptTokens));
        }
    }

    private void Count(int produced)
    {
        if (produced == 0) return;
        long now = Stopwatch.GetTimestamp();
        lock (_statsLock)
        {
            _tokens += produced;
            _recentTokens += produced;
            _recent.Enqueue((now, produced));
            Prune(now);
        }
    }

    private void Prune(long now)
    {
        long window = (long)(RateWindow.TotalSeconds * Stopwatch.Frequency);
        while (_recent.Count > 0 && now - _recent.Peek().Ticks > window) _recentTokens -= _recent.Dequeue().Tokens;
    }
}

/// <summary>
/// A request of a <see cref="ContinuousBatcher"/>: its text as it is produced (<see cref="ReadPiecesAsync"/>) and its
/// result (<see cref="Completion"/>, which also carries an engine failure).
/// </summary>
public sealed class BatchedGeneration
{
    private readonly Channel<string> _pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource<GenerationResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal BatchedGeneration(long id, int[] promptTokens, GenerationOptions options, CancellationTokenSource cancellation)
    {
        Id = id;
        PromptTokens = promptTokens;
        Options = options;
        Cancellation = cancellation;
    }

    /// <summary>Numbers requests in the order they were submitted.</summary>
    public long Id { get; }
    public IReadOnlyList<int> PromptTokenIds => PromptTokens;
    public GenerationOptions Options { get; }

    /// <summary>The result once the request has ended: finished, stopped, cancelled — or the exception that ended it.</summary>
    public Task<GenerationResult> Completion => _completion.Task;

    internal int[] PromptTokens { get; }
    internal CancellationTokenSource Cancellation { get; }
    internal CancellationTokenRegistration Registration { get; set; }
    internal GenerationRun? Run { get; set; }
    internal ChannelWriter<string> Writer => _pieces.Writer;

    /// <summary>Ends the request early (as its submit's cancellation token does).</summary>
    public void Cancel()
    {
        try
        {
            Cancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already ended: nothing left to cancel.
        }
    }

    /// <summary>
    /// The text pieces as rounds produce them, once; their concatenation is the result's text. Throws the exception that
    /// ended the request, if one did. Cancelling <paramref name="cancellationToken"/> stops reading only.
    /// </summary>
    public IAsyncEnumerable<string> ReadPiecesAsync(CancellationToken cancellationToken = default) => _pieces.Reader.ReadAllAsync(cancellationToken);

    internal void Finish(GenerationResult result)
    {
        _pieces.Writer.TryComplete();
        _completion.TrySetResult(result);
        Cancellation.Dispose();
    }

    internal void Finish(Exception e)
    {
        _pieces.Writer.TryComplete(e);
        _completion.TrySetException(e);
        Cancellation.Dispose();
    }
}
