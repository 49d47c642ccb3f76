using Kangaroo.Generation;
using Kangaroo.Model;
using Kangaroo.Speculative;
using Kangaroo.Tokenization;

namespace Kangaroo;

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
                $"vocab_size is {config.VocabSize} but {Path.Combine(directory, tokenizer.FileName)} has {tokenizer.VocabularySize} tokens: the tokenizer and the model do not belong together");
        int context = options.ContextLength ?? Math.Min(config.MaxPositionEmbeddings, 4096);
        if (context < 2) throw new InvalidRequestException($"context length must be at least 2, got {context}");
        config.CheckContext(context, options.Backend);
        var model = LlamaModel.Load(config, directory, options.Backend, options.Progress);
        KangarooAdapter? adapter = null;
        try
        {
            string? adapterDirectory = options.AdapterDirectory ?? KangarooAdapter.BundledDirectory(directory);
            if (adapterDirectory is not null && options.LoadAdapter) adapter = KangarooAdapter.Load(adapterDirectory, model);
            adapter?.Config.CheckContext(context, options.Backend);
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

    /// <summary>
    /// Embeddings of <paramref name="texts"/> (<see cref="Embeddings.TextEmbedder"/>: the final-norm hidden states mean-pooled
    /// over each text's tokens, L2-normalised; length <see cref="LlamaConfig.HiddenSize"/>), in text order. Up to 16 texts
    /// share each forward pass. BOS is prepended as the tokenizer configuration says, or as <paramref name="addBos"/> says.
    /// </summary>
    public IReadOnlyList<float[]> Embed(IReadOnlyList<string> texts, bool? addBos = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var tokens = new int[texts.Count][];
        for (int i = 0; i < texts.Count; i++)
        {
            string text = texts[i] ?? throw new InvalidRequestException($"text {i} is null");
            tokens[i] = Tokenizer.Encode(text, addBos ?? Tokenizer.AddBosToken);
        }
        return Embed(tokens);
    }

    /// <summary><see cref="Embed(IReadOnlyList{string}, bool?)"/> of texts already tokenized (each non-empty, within the context).</summary>
    public IReadOnlyList<float[]> Embed(IReadOnlyList<int[]> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        for (int i = 0; i < tokens.Count; i++)
        {
            int length = tokens[i]?.Length ?? 0;
            if (length == 0) throw new InvalidRequestException($"text {i} is empty (no tokens); give some text");
            if (length > ContextLength) throw new InvalidRequestException($"text {i} has {length} tokens but the context holds {ContextLength}");
        }
        var embeddings = new List<float[]>(tokens.Count);
        const int textsPerPass = 16;
        for (int start = 0; start < tokens.Count; start += textsPerPass)
        {
            var group = tokens.Skip(start).Take(textsPerPass).ToArray();
            int longest = group.Max(t => t.Length);
            CheckContext(longest);
            using var embedder = new Embeddings.TextEmbedder(Model, group.Length, longest);
            try
            {
                embeddings.AddRange(embedder.Embed(group));
            }
            catch (NonFiniteLogitsException e) when (!e.Diagnosed)
            {
                throw ExplainNonFinite(e);
            }
        }
        return embeddings;
    }

    /// <summary>Refuses a context the model or its adapter cannot serve exactly (<see cref="LlamaConfig.CheckContext"/>).</summary>
    internal void CheckContext(int contextLength)
    {
        Config.CheckContext(contextLength, Model.Backend);
        Adapter?.Config.CheckContext(contextLength, Model.Backend);
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
