using Kangaroo.Backends;
using Kangaroo.Generation;
using Kangaroo.Model;
using Kangaroo.Speculative;
using Kangaroo.Tokenization;

namespace Kangaroo;

/// <summary>How to load a <see cref="LanguageModel"/>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>The backend to compute on. The model does not dispose it (one backend may serve several models).</summary>
    public required IComputeBackend Backend { get; init; }

    /// <summary>Reports weight loading (bytes made available to the backend).</summary>
    public IProgress<LoadProgress>? Progress { get; init; }

    /// <summary>Default context (KV cache positions) of sessions; null = min(max_position_embeddings, 4096).</summary>
    public int? ContextLength { get; init; }

    /// <summary>
    /// The Kangaroo adapter to load. Null = the model directory's <c>kangaroo-adapter/</c> subfolder when it exists
    /// (no adapter otherwise); <see cref="LoadAdapter"/> = false skips it.
    /// </summary>
    public string? AdapterDirectory { get; init; }

    public bool LoadAdapter { get; init; } = true;
}

/// <summary>
/// A loaded model: weights on a backend, tokenizer and defaults. Load once, share freely: every generation runs in
/// its own <see cref="InferenceSession"/> (KV cache, scratch), so generations from several threads run at once.
/// </summary>
public sealed class LanguageModel : IDisposable
{
    private LanguageModel(LlamaModel model, KangarooAdapter? adapter, TextTokenizer tokenizer, GenerationConfig generationConfig,
        int contextLength, string directory)
    {
        Model = model;
        Adapter = adapter;
        Tokenizer = tokenizer;
        GenerationConfig = generationConfig;
        ContextLength = contextLength;
        Directory = directory;
        var eos = new HashSet<int>(model.Config.EosTokenIds);
        eos.UnionWith(generationConfig.EosTokenIds);
        if (tokenizer.EosTokenId is int tokenizerEos) eos.Add(tokenizerEos);
        EndOfSequenceIds = eos;
    }

    /// <summary>Loads a Hugging Face Llama model directory (config.json, safetensors weights, tokenizer).</summary>
    public static LanguageModel Load(string directory, ModelLoadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!System.IO.Directory.Exists(directory))
            throw new ModelFormatException(directory, "model directory not found");
        var config = LlamaConfig.LoadFromDirectory(directory);
        var generationConfig = GenerationConfig.LoadFromDirectory(directory);
        var tokenizer = TextTokenizer.Load(directory);
        if (tokenizer.VocabularySize > config.VocabSize)
            throw new ModelFormatException(config.SourcePath ?? directory,
                $"vocab_size is {config.VocabSize} but {Path.Combine(directory, TextTokenizer.SentencePieceFileName)} has {tokenizer.VocabularySize} tokens: the tokenizer and the model do not belong together");
        int context = options.ContextLength ?? Math.Min(config.MaxPositionEmbeddings, 4096);
        if (context < 2) throw new InvalidRequestException($"context length must be at least 2, got {context}");
        config.CheckContext(context);
        var model = LlamaModel.Load(directory, options.Backend, options.Progress);
        KangarooAdapter? adapter = null;
        try
        {
            string? adapterDirectory = options.AdapterDirectory ?? KangarooAdapter.BundledDirectory(directory);
            if (adapterDirectory is not null && options.LoadAdapter) adapter = KangarooAdapter.Load(adapterDirectory, model);
            adapter?.Config.CheckContext(context);
        }
        catch
        {
            adapter?.Dispose();
            model.Dispose();
            throw;
        }
        return new LanguageModel(model, adapter, tokenizer, generationConfig, context, directory);
    }

    public string Directory { get; }
    public LlamaModel Model { get; }

    /// <summary>The Kangaroo adapter, when one was loaded: needed for <see cref="GenerationOptions.Speculation"/>.</summary>
    public KangarooAdapter? Adapter { get; }

    public LlamaConfig Config => Model.Config;
    public TextTokenizer Tokenizer { get; }
    public GenerationConfig GenerationConfig { get; }
    public int ContextLength { get; }

    /// <summary>Token ids that end a sequence: config.json, generation_config.json and the tokenizer together.</summary>
    public IReadOnlySet<int> EndOfSequenceIds { get; }

    /// <summary>A session with its own KV cache; reuses the cached prompt prefix across its generations.</summary>
    public InferenceSession CreateSession(int? contextLength = null) => new(this, contextLength ?? ContextLength);

    /// <summary>Generates a completion of <paramref name="prompt"/> in a fresh session.</summary>
    public GenerationResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var session = CreateSession();
        return session.Generate(prompt, options, cancellationToken);
    }

    /// <summary>
    /// Sequences decoded together: up to <paramref name="maxSequences"/> prompts at once, each in its own region of one
    /// KV cache of <paramref name="contextLength"/> positions per sequence (default <see cref="ContextLength"/>).
    /// </summary>
    public BatchSession CreateBatchSession(int maxSequences, int? contextLength = null) => new(this, maxSequences, contextLength ?? ContextLength);

    /// <summary>
    /// Completes every prompt, decoding up to <paramref name="maxSequences"/> (default: all, at most 16) together in each
    /// forward pass; results in prompt order. Greedy: each result is <see cref="Generate"/>'s for that prompt. Sampling:
    /// prompt i uses seed <c>options.Seed + i</c>; see <see cref="BatchSession.Generate"/>.
    /// </summary>
    public IReadOnlyList<GenerationResult> GenerateBatch(IReadOnlyList<string> prompts, GenerationOptions? options = null, int? maxSequences = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        using var session = CreateBatchSession(maxSequences ?? Math.Clamp(prompts.Count, 1, 16));
        return session.Generate(prompts, options, cancellationToken);
    }

    /// <summary>Streams the completion as text pieces; <see cref="GenerationStream.Result"/> holds ids and timings afterwards.</summary>
    public GenerationStream GenerateStreaming(string prompt, GenerationOptions? options = null) =>
        new(CreateSession(), prompt, options, ownsSession: true);

    /// <summary>Refuses a context the model or its adapter cannot serve exactly (<see cref="LlamaConfig.CheckContext"/>).</summary>
    internal void CheckContext(int contextLength)
    {
        Config.CheckContext(contextLength);
        Adapter?.Config.CheckContext(contextLength);
    }

    /// <summary>A <see cref="NonFiniteLogitsException"/> with its cause: the first non-finite weight tensor, or the config's numbers.</summary>
    internal NonFiniteLogitsException ExplainNonFinite(NonFiniteLogitsException e)
    {
        if (e.Diagnosed) return e;
        string cause = Model.FindNonFiniteWeight() ?? Adapter?.FindNonFiniteWeight()
            ?? $"every weight is finite, so activations overflowed: check {Config.SourcePath ?? Path.Combine(Directory, LlamaConfig.FileName)}'s rope_theta, rope scaling and rms_norm_eps, and weights too large for the backend's 16-bit storage";
        return new NonFiniteLogitsException($"{e.Message}: {cause}", e) { Diagnosed = true };
    }

    public void Dispose()
    {
        Adapter?.Dispose();
        Model.Dispose();
    }
}

/// <summary>One sequence's state on a model: KV cache and scratch. Not thread-safe; create one per concurrent generation.</summary>
public sealed class InferenceSession : IDisposable
{
    private readonly LanguageModel _owner;
    private VanillaDecoder? _vanilla;
    private ISpeculativeDecoder? _kangaroo;
    private KangarooOptions? _kangarooOptions;

    internal InferenceSession(LanguageModel owner, int contextLength)
    {
        if (contextLength < 2) throw new InvalidRequestException($"context length must be at least 2, got {contextLength}");
        owner.CheckContext(contextLength);
        _owner = owner;
        ContextLength = contextLength;
    }

    public int ContextLength { get; }

    /// <summary>Prepares a generation to step through (the building block of the other methods).</summary>
    public GenerationRun Start(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new GenerationOptions();
        options.Validate();
        int[] promptTokens = _owner.Tokenizer.Encode(prompt, options.AddBos ?? _owner.Tokenizer.AddBosToken);
        var random = new DeterministicRandom(options.Seed ?? DeterministicRandom.RandomSeed());
        ISequenceDecoder decoder;
        if (options.Speculation is { } speculation)
        {
            var kangaroo = KangarooDecoderFor(speculation);
            kangaroo.Configure(options, random);
            decoder = kangaroo;
        }
        else
        {
            _vanilla ??= new VanillaDecoder(_owner.Model, ContextLength);
            _vanilla.Configure(options, random);
            decoder = _vanilla;
        }
        return new GenerationRun(decoder, _owner.Tokenizer, promptTokens, options, _owner.EndOfSequenceIds, ContextLength, cancellationToken)
        {
            ExplainNonFinite = _owner.ExplainNonFinite,
        };
    }

    private ISpeculativeDecoder KangarooDecoderFor(KangarooOptions options)
    {
        var adapter = _owner.Adapter ?? throw new InvalidRequestException(
            $"Kangaroo decoding needs an adapter: none was loaded (give one, or put it in {Path.Combine(_owner.Directory, KangarooAdapter.DefaultSubdirectory)})");
        options.Validate(_owner.Config.NumLayers);
        if (_kangaroo is null || _kangarooOptions != options)
        {
            _kangaroo?.Dispose();
            _kangaroo = options.Tree is null
                ? new KangarooDecoder(_owner.Model, adapter, options, ContextLength)
                : new KangarooTreeDecoder(_owner.Model, adapter, options, ContextLength);
            _kangarooOptions = options;
        }
        return _kangaroo;
    }

    public GenerationResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Start(prompt, options, cancellationToken).RunToEnd();

    public GenerationStream GenerateStreaming(string prompt, GenerationOptions? options = null) =>
        new(this, prompt, options, ownsSession: false);

    public void Dispose()
    {
        _vanilla?.Dispose();
        _kangaroo?.Dispose();
    }
}

/// <summary>
/// Several sequences decoded together on one model (vanilla, or Kangaroo's chain with <see cref="GenerationOptions.Speculation"/>):
/// every round advances all running sequences through forward passes that serve them all, so the weights are read once
/// for many tokens. A finished sequence's slot takes the next prompt. Not thread-safe; reusable across calls.
/// </summary>
public sealed class BatchSession : IDisposable
{
    private readonly LanguageModel _owner;
    private BatchVanillaDecoder? _vanilla;
    private BatchKangarooDecoder? _kangaroo;
    private KangarooOptions? _kangarooOptions;

    internal BatchSession(LanguageModel owner, int maxSequences, int contextLength)
    {
        if (maxSequences < 1) throw new InvalidRequestException($"a batch needs at least one sequence, got {maxSequences}");
        if (contextLength < 2) throw new InvalidRequestException($"context length must be at least 2, got {contextLength}");
        owner.CheckContext(contextLength);
        _owner = owner;
        MaxSequences = maxSequences;
        ContextLength = contextLength;
    }

    /// <summary>Sequences decoded at once (more prompts wait for a free slot).</summary>
    public int MaxSequences { get; }
    /// <summary>Positions each sequence holds (prompt + generated).</summary>
    public int ContextLength { get; }

    /// <summary>
    /// Completes every prompt; results in prompt order. Greedy: each result is a single generation's (vanilla's text, with
    /// or without Kangaroo). Sampling: prompt i samples with seed <c>options.Seed + i</c> (a random base when null) and its
    /// tokens are a single generation's with that seed — with Kangaroo as long as the batch draft stop
    /// (<see cref="KangarooOptions.BatchDraftStop"/>) did not cut its drafting; where it did, they are other draws from the
    /// same distribution (the verification stays lossless). Token trees are not batched: with
    /// <c>Speculation.Tree</c> set this is an <see cref="InvalidRequestException"/>. Each result's timings span its own
    /// sequence, which shares every pass with the others. Cancellation ends the running sequences as a single generation
    /// ends (<see cref="StopReason.Cancelled"/>); prompts not started yet come back empty, cancelled.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        options ??= new GenerationOptions();
        options.Validate();
        var tokens = new int[prompts.Count][];
        for (int i = 0; i < prompts.Count; i++)
        {
            string prompt = prompts[i] ?? throw new InvalidRequestException($"prompt {i} is null");
            tokens[i] = _owner.Tokenizer.Encode(prompt, options.AddBos ?? _owner.Tokenizer.AddBosToken);
            if (tokens[i].Length == 0) throw new InvalidRequestException($"prompt {i} is empty (no tokens); give some text");
            if (tokens[i].Length >= ContextLength)
                throw new InvalidRequestException($"prompt {i} has {tokens[i].Length} tokens but the context holds {ContextLength}: leave room for at least one new token");
        }
        IBatchDecoder decoder = options.Speculation is { } speculation ? KangarooDecoderFor(speculation) : _vanilla ??= new BatchVanillaDecoder(_owner.Model, MaxSequences, ContextLength);
        ulong seed = options.Seed ?? DeterministicRandom.RandomSeed();
        try
        {
            return BatchGeneration.Run(decoder, _owner.Tokenizer, tokens, options, i => new DeterministicRandom(unchecked(seed + (ulong)i)),
                _owner.EndOfSequenceIds, cancellationToken);
        }
        catch (NonFiniteLogitsException e) when (!e.Diagnosed)
        {
            throw _owner.ExplainNonFinite(e);
        }
    }

    private BatchKangarooDecoder KangarooDecoderFor(KangarooOptions options)
    {
        var adapter = _owner.Adapter ?? throw new InvalidRequestException(
            $"Kangaroo decoding needs an adapter: none was loaded (give one, or put it in {Path.Combine(_owner.Directory, KangarooAdapter.DefaultSubdirectory)})");
        options.Validate(_owner.Config.NumLayers);
        if (options.Tree is not null)
            throw new InvalidRequestException("token trees are not decoded in batches: set Speculation.Tree to null (the chain), or generate each prompt alone");
        if (_kangaroo is null || _kangarooOptions != options)
        {
            _kangaroo?.Dispose();
            _kangaroo = new BatchKangarooDecoder(_owner.Model, adapter, options, MaxSequences, ContextLength);
            _kangarooOptions = options;
        }
        return _kangaroo;
    }

    public void Dispose()
    {
        _vanilla?.Dispose();
        _kangaroo?.Dispose();
    }
}

/// <summary>
/// Text pieces of a generation as they are produced (<c>await foreach</c>); afterwards <see cref="Result"/> carries token
/// ids, stop reason and timings. Steps run on the thread pool, off the caller's context. Enumerate once.
/// </summary>
public sealed class GenerationStream : IAsyncEnumerable<string>
{
    private readonly InferenceSession _session;
    private readonly string _prompt;
    private readonly GenerationOptions? _options;
    private readonly bool _ownsSession;
    private GenerationResult? _result;
    private int _enumerated;

    internal GenerationStream(InferenceSession session, string prompt, GenerationOptions? options, bool ownsSession)
    {
        _session = session;
        _prompt = prompt;
        _options = options;
        _ownsSession = ownsSession;
    }

    /// <summary>The finished generation's result; throws before the stream has been enumerated to the end.</summary>
    public GenerationResult Result => _result ?? throw new InvalidOperationException("enumerate the stream to its end first");

    public async IAsyncEnumerator<string> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _enumerated, 1) != 0) throw new InvalidOperationException("a generation stream can be enumerated once");
        try
        {
            await Task.Yield();
            var run = _session.Start(_prompt, _options, cancellationToken);
            while (true)
            {
                string piece = "";
                bool more = await Task.Run(() => run.Step(out piece), CancellationToken.None).ConfigureAwait(false);
                if (!more) break;
                if (piece.Length > 0) yield return piece;
            }
            _result = run.Result;
        }
        finally
        {
            if (_ownsSession) _session.Dispose();
        }
    }
}
