using Kangaroo.Backends;
using Kangaroo.Weights;

namespace Kangaroo.Model;

/// <summary>Progress of weight loading: bytes made available to the backend so far.</summary>
public readonly record struct LoadProgress(long LoadedBytes, long TotalBytes, string TensorName);

/// <summary>
/// A Llama-family transformer on one backend. The forward pass is exposed in stages (embed, a range of decoder
/// layers, final norm + LM head) so that decoders — vanilla, and Kangaroo's shallow draft and deep verify — compose
/// it. Shared by many sessions: all per-sequence state lives in <see cref="KvCache"/> and <see cref="ForwardWorkspace"/>.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    private readonly WeightStore? _ownedWeights;
    private readonly List<WeightTensor> _tensors = [];
    private TensorView[] _sourceViews = [];

    internal sealed record LayerWeights(
        WeightTensor InputNorm, WeightTensor QueryProjection, WeightTensor KeyProjection, WeightTensor ValueProjection,
        WeightTensor OutputProjection, WeightTensor PostAttentionNorm, WeightTensor GateProjection,
        WeightTensor UpProjection, WeightTensor DownProjection)
    {
        /// <summary>Qwen3's per-head RMSNorm weights (<see cref="LlamaConfig.QueryKeyNorm"/>); null where the architecture has none.</summary>
        public HeadNorms? Norms { get; init; }
        /// <summary>The projections' biases, each null where the config declares none.</summary>
        public ProjectionBiases Biases { get; init; } = ProjectionBiases.None;
    }

    /// <summary>Biases of a layer's projections (<see cref="LlamaConfig.QkvBias"/>, <see cref="LlamaConfig.OutputBias"/>, <see cref="LlamaConfig.MlpBias"/>).</summary>
    internal sealed record ProjectionBiases(
        WeightTensor? Query, WeightTensor? Key, WeightTensor? Value, WeightTensor? Output,
        WeightTensor? Gate, WeightTensor? Up, WeightTensor? Down)
    {
        public static readonly ProjectionBiases None = new(null, null, null, null, null, null, null);
        public bool Mlp => Gate is not null;
    }

    /// <summary>The RMSNorm weights applied to every query and key head before the rotary embedding.</summary>
    internal sealed record HeadNorms(WeightTensor Query, WeightTensor Key);

    private LlamaModel(LlamaConfig config, IComputeBackend backend, WeightStore? ownedWeights)
    {
        Config = config;
        Backend = backend;
        _ownedWeights = ownedWeights;
    }

    public LlamaConfig Config { get; }
    public IComputeBackend Backend { get; }
    internal WeightTensor Embedding { get; private set; } = null!;
    internal WeightTensor FinalNorm { get; private set; } = null!;
    internal WeightTensor LmHead { get; private set; } = null!;
    internal WeightTensor InverseFrequencies { get; private set; } = null!;
    internal LayerWeights[] Layers { get; private set; } = [];

    /// <summary>Total bytes of weights loaded onto the backend (tied embeddings counted once).</summary>
    public long WeightBytes { get; private set; }

    /// <summary>Loads <c>config.json</c> and the safetensors weights of a Hugging Face model directory.</summary>
    public static LlamaModel Load(string directory, IComputeBackend backend, IProgress<LoadProgress>? progress = null) =>
        Load(LlamaConfig.LoadFromDirectory(directory), directory, backend, progress);

    /// <summary>Loads the safetensors weights of <paramref name="directory"/> for a config already read from it.</summary>
    public static LlamaModel Load(LlamaConfig config, string directory, IComputeBackend backend, IProgress<LoadProgress>? progress = null)
    {
        var weights = WeightStore.OpenDirectory(directory);
        try
        {
            return Create(config, weights, backend, ownsWeights: true, progress);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Builds the model from open weights. Every tensor is checked against the shape the config implies; a missing or
    /// misshapen tensor is a <see cref="ModelFormatException"/> naming it. With <paramref name="ownsWeights"/> the
    /// model disposes the store (host backends read the mapped files directly, so the store must outlive the model).
    /// </summary>
    public static LlamaModel Create(LlamaConfig config, WeightStore weights, IComputeBackend backend, bool ownsWeights = false,
        IProgress<LoadProgress>? progress = null)
    {
        var model = new LlamaModel(config, backend, ownsWeights ? weights : null);
        try
        {
            model.LoadWeights(weights, progress);
            return model;
        }
        catch
        {
            model.DisposeTensors();
            throw;
        }
    }

    /// <summary>Names and shapes of every tensor the config requires (the loading plan; also used by inspect).</summary>
    public static IReadOnlyList<(string Name, int[] Shape)> ExpectedTensors(LlamaConfig c)
    {
        var list = new List<(string, int[])> { ("model.embed_tokens.weight", [c.VocabSize, c.HiddenSize]) };
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            list.Add((p + "input_layernorm.weight", [c.HiddenSize]));
            list.Add((p + "self_attn.q_proj.weight", [c.QueryWidth, c.HiddenSize]));
            list.Add((p + "self_attn.k_proj.weight", [c.KvWidth, c.HiddenSize]));
            list.Add((p + "self_attn.v_proj.weight", [c.KvWidth, c.HiddenSize]));
            list.Add((p + "self_attn.o_proj.weight", [c.HiddenSize, c.QueryWidth]));
            if (c.QueryKeyNorm)
            {
                list.Add((p + "self_attn.q_norm.weight", [c.HeadDim]));
                list.Add((p + "self_attn.k_norm.weight", [c.HeadDim]));
            }
            if (c.QkvBias)
            {
                list.Add((p + "self_attn.q_proj.bias", [c.QueryWidth]));
                list.Add((p + "self_attn.k_proj.bias", [c.KvWidth]));
                list.Add((p + "self_attn.v_proj.bias", [c.KvWidth]));
            }
            if (c.OutputBias) list.Add((p + "self_attn.o_proj.bias", [c.HiddenSize]));
            list.Add((p + "post_attention_layernorm.weight", [c.HiddenSize]));
            list.Add((p + "mlp.gate_proj.weight", [c.IntermediateSize, c.HiddenSize]));
            list.Add((p + "mlp.up_proj.weight", [c.IntermediateSize, c.HiddenSize]));
            list.Add((p + "mlp.down_proj.weight", [c.HiddenSize, c.IntermediateSize]));
            if (c.MlpBias)
            {
                list.Add((p + "mlp.gate_proj.bias", [c.IntermediateSize]));
                list.Add((p + "mlp.up_proj.bias", [c.IntermediateSize]));
                list.Add((p + "mlp.down_proj.bias", [c.HiddenSize]));
            }
        }
        list.Add(("model.norm.weight", [c.HiddenSize]));
        if (!c.TieWordEmbeddings) list.Add(("lm_head.weight", [c.VocabSize, c.HiddenSize]));
        return list;
    }

    /// <summary>
    /// Every tensor the config requires, in <see cref="ExpectedTensors"/>' order, checked before any byte moves: the
    /// checkpoint's layer count and sizes against the config (a disagreeing field is named in config.json), each tensor's
    /// shape, and no tensor left unused. Any problem is a <see cref="ModelFormatException"/>.
    /// </summary>
    public static TensorView[] CheckedViews(LlamaConfig config, WeightStore weights)
    {
        // Before the plan is made: a config of 10⁸ layers must fail here, not build a plan of that size.
        CheckpointCheck.CheckBase(config, weights);
        CheckpointCheck.RequireDeclared(config, weights);
        var plan = ExpectedTensors(config);
        CheckpointCheck.RefuseUnused(weights.TensorNames, plan.Select(p => p.Name).ToHashSet(StringComparer.Ordinal),
            name => weights.Get(name).FilePath, config.SourcePath ?? LlamaConfig.FileName);
        var views = new TensorView[plan.Count];
        for (int i = 0; i < plan.Count; i++) views[i] = weights.Get(plan[i].Name, plan[i].Shape);
        return views;
    }

    private void LoadWeights(WeightStore weights, IProgress<LoadProgress>? progress)
    {
        // In ExpectedTensors' order, every shape already checked against the config.
        var views = CheckedViews(Config, weights);
        long total = views.Sum(v => v.ByteLength);

        long loaded = 0;
        int next = 0;
        WeightTensor Take()
        {
            var view = views[next++];
            var shape = view.Shape;
            var tensor = Backend.LoadWeight(view, shape.Count == 1 ? 1 : shape[0], shape[^1]);
            _tensors.Add(tensor);
            loaded += view.ByteLength;
            progress?.Report(new LoadProgress(loaded, total, view.Name));
            return tensor;
        }

        Embedding = Take();
        Layers = new LayerWeights[Config.NumLayers];
        for (int i = 0; i < Config.NumLayers; i++)
        {
            WeightTensor input = Take(), query = Take(), key = Take(), value = Take(), output = Take();
            HeadNorms? norms = Config.QueryKeyNorm ? new HeadNorms(Take(), Take()) : null;
            WeightTensor? qb = null, kb = null, vb = null;
            if (Config.QkvBias) (qb, kb, vb) = (Take(), Take(), Take());
            WeightTensor? ob = Config.OutputBias ? Take() : null;
            WeightTensor postNorm = Take(), gate = Take(), up = Take(), down = Take();
            WeightTensor? gb = null, ub = null, db = null;
            if (Config.MlpBias) (gb, ub, db) = (Take(), Take(), Take());
            Layers[i] = new LayerWeights(input, query, key, value, output, postNorm, gate, up, down)
            {
                Norms = norms,
                Biases = new ProjectionBiases(qb, kb, vb, ob, gb, ub, db),
            };
        }
        FinalNorm = Take();
        LmHead = Config.TieWordEmbeddings ? Embedding : Take();
        WeightBytes = total;
        // Host views stay valid only while this model owns the mapped files.
        if (_ownedWeights is not null) _sourceViews = views;

        float[] inverseFrequencies = RotaryEmbedding.InverseFrequencies(Config);
        InverseFrequencies = Backend.LoadWeight("rope.inv_freq", inverseFrequencies, 1, inverseFrequencies.Length);
        _tensors.Add(InverseFrequencies);
    }

    /// <param name="treeWindow">Room for token-tree passes (rows with recent-slot windows): the deepest path + 1; 0 for none.</param>
    public ForwardWorkspace CreateWorkspace(int maxRows, int treeWindow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        return new ForwardWorkspace(Backend, Config, maxRows, treeWindow: treeWindow);
    }

    /// <param name="sequences">Independent sequences sharing the storage, each of <paramref name="capacity"/> positions
    /// (batched decoding; <see cref="KvCache.Length"/> then is the batch scheduler's business).</param>
    public KvCache CreateCache(int capacity, int sequences = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        return new KvCache(Backend.AllocateKvCache(Config.NumLayers, capacity, Config.KvWidth, sequences));
    }

    /// <summary>Stages <paramref name="tokens"/> at positions [<paramref name="startPosition"/>, …) of a one-sequence cache and gathers their embeddings into <see cref="ForwardWorkspace.Hidden"/>.</summary>
    public void Embed(ForwardWorkspace workspace, ReadOnlySpan<int> tokens, int startPosition)
    {
        var rows = workspace.Rows.Reset(withTokens: true);
        rows.AddRange(0, 0, startPosition, tokens.Length, tokens);
        Stage(workspace, capacity: int.MaxValue, cacheSequences: 1, rows);
        EmbedStaged(workspace, tokens.Length);
    }

    /// <summary>
    /// Uploads the rows of the next pass (<see cref="PassRows"/>: positions, slots, windows, sequences, tokens) into the
    /// workspace, checked against <paramref name="cache"/> and the vocabulary. Every pass is staged this way: the next
    /// <see cref="RunLayers"/> stores each row's keys and values in its slot and attends through its window, reading its
    /// own sequence's keys only, so each row gets the bits a pass of its own sequence alone would.
    /// </summary>
    public void Stage(ForwardWorkspace workspace, KvCache cache, PassRows rows) =>
        Stage(workspace, cache.Capacity, cache.Storage.Sequences, rows);

    /// <summary><see cref="Stage(ForwardWorkspace, KvCache, PassRows)"/>, leaving the tokens out (a pass that does not embed, e.g. the adapter reading the same rows).</summary>
    internal void Stage(ForwardWorkspace workspace, KvCache cache, PassRows rows, bool tokens) =>
        Stage(workspace, cache.Capacity, cache.Storage.Sequences, rows, tokens);

    private void Stage(ForwardWorkspace workspace, int capacity, int cacheSequences, PassRows rows, bool tokens = true)
    {
        int count = rows.Count;
        CheckRows(workspace, count);
        if (rows.Window > workspace.TreeWindow)
            throw new InvalidOperationException($"rows with windows of {rows.Window} recent slots need a workspace made with a tree window of that size (this one: {workspace.TreeWindow})");
        CheckTokens(rows.Tokens);
        var positions = rows.Positions;
        var slots = rows.Slots;
        var sequences = rows.Sequences;
        long slotCount = (long)capacity * cacheSequences;
        bool slotsArePositions = cacheSequences == 1 && rows.Window == 0;
        for (int r = 0; r < count; r++)
        {
            if ((uint)sequences[r] >= (uint)cacheSequences)
                throw new ArgumentOutOfRangeException(nameof(rows), sequences[r], $"row {r}: the cache holds sequences [0, {cacheSequences})");
            if ((uint)positions[r] >= (uint)capacity)
                throw new ArgumentOutOfRangeException(nameof(rows), positions[r], $"row {r}: a sequence holds positions [0, {capacity})");
            // A backend without sliding-window attention attends to every key: past the window that is another model.
            if (Config.SlidingWindow is int window && positions[r] >= window && Config.AttentionWindow(Backend) == 0)
                throw new ModelFormatException(Config.SourcePath ?? LlamaConfig.FileName,
                    $"sliding_window is {window} and row {r} is at position {positions[r]}: " + (Config.ModelType == "mistral"
                        ? $"the {Backend.Name} backend does not implement sliding-window attention yet (cpu and ilgpu do)"
                        : $"only model_type \"mistral\" slides its window"));
            if ((ulong)slots[r] >= (ulong)slotCount)
                throw new ArgumentOutOfRangeException(nameof(rows), slots[r], $"row {r}: the cache has slots [0, {slotCount})");
            slotsArePositions &= slots[r] == positions[r];
        }
        Backend.Upload(positions, workspace.Positions);
        if (!slotsArePositions) Backend.Upload(slots, workspace.Slots);
        if (cacheSequences > 1) Backend.Upload(sequences, workspace.Sequences);
        if (rows.Window > 0) Backend.Upload(rows.RecentSlots, workspace.RecentSlots!);
        if (tokens && rows.HasTokens) Backend.Upload(rows.Tokens, workspace.Tokens);
        workspace.SlotsArePositions = slotsArePositions;
        workspace.Staged = new PassShape(count, rows.Window, cacheSequences > 1);
    }

    /// <summary>Stages <paramref name="count"/> consecutive positions of one sequence of <paramref name="cache"/> from <paramref name="start"/> (tokens optional).</summary>
    public void StageRange(ForwardWorkspace workspace, KvCache cache, int sequence, int start, int count, ReadOnlySpan<int> tokens = default)
    {
        var rows = workspace.Rows.Reset(withTokens: !tokens.IsEmpty);
        rows.AddRange(sequence, sequence * cache.Capacity, start, count, tokens);
        Stage(workspace, cache, rows);
    }

    private void CheckTokens(ReadOnlySpan<int> tokens)
    {
        foreach (int token in tokens)
        {
            if ((uint)token >= (uint)Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), token, $"token id outside the vocabulary [0, {Config.VocabSize})");
        }
    }

    /// <summary>The device half of <see cref="Embed"/>: gathers the staged tokens' embeddings (recordable).</summary>
    public void EmbedStaged(ForwardWorkspace workspace, int rows) => Backend.Embed(Embedding, workspace.Tokens, workspace.Hidden, rows);

    /// <summary>
    /// Runs <paramref name="pass"/> over the rows staged last (<see cref="Stage"/>): recorded once per pass and
    /// <see cref="PassShape"/> and replayed after, where the backend records (<see cref="IGraphCapture"/>) and the
    /// workspace allows it; otherwise run op by op. The same ops run either way, so results are identical.
    /// </summary>
    public void Run(ForwardWorkspace workspace, KvCache cache, ForwardPass pass)
    {
        if (Backend is IGraphCapture capture && workspace.UseRecordedPasses)
        {
            workspace.Recorded.Run(capture, new RecordedPassKey(PassNetwork.Base, pass, workspace.Staged, cache.Storage),
                (Model: this, Workspace: workspace, Cache: cache, Pass: pass), static s => s.Model.Execute(s.Workspace, s.Cache, s.Pass));
            return;
        }
        Execute(workspace, cache, pass);
    }

    private void Execute(ForwardWorkspace workspace, KvCache cache, ForwardPass pass)
    {
        int rows = workspace.Staged.Rows;
        if (pass.Embed) EmbedStaged(workspace, rows);
        RunLayers(workspace, cache, pass.FirstLayer, pass.EndLayer, rows);
        if (pass.LogitsFrom != ForwardPass.NoLogits) ComputeLogits(workspace, pass.LogitsFrom, rows - pass.LogitsFrom);
    }

    /// <summary>
    /// Runs decoder layers [<paramref name="firstLayer"/>, <paramref name="endLayer"/>) over the first <paramref name="rows"/>
    /// rows of <see cref="ForwardWorkspace.Hidden"/> as staged by <see cref="Stage"/> (or <see cref="Embed"/>),
    /// writing those layers' keys and values into the cache slots of those positions. The caller must have ensured the
    /// cache holds valid entries for every earlier position of these layers.
    /// </summary>
    public void RunLayers(ForwardWorkspace ws, KvCache cache, int firstLayer, int endLayer, int rows)
    {
        if (firstLayer < 0 || endLayer > Config.NumLayers || firstLayer > endLayer)
            throw new ArgumentOutOfRangeException(nameof(firstLayer), $"layer range [{firstLayer}, {endLayer}) outside [0, {Config.NumLayers}]");
        CheckRows(ws, rows);
        if (firstLayer == endLayer) return;

        var b = Backend;
        var c = Config;
        float eps = (float)c.RmsNormEps;
        b.RmsNorm(ws.Hidden, Layers[firstLayer].InputNorm, eps, ws.Normed, rows, c.HiddenSize);
        for (int i = firstLayer; i < endLayer; i++)
        {
            var layer = Layers[i];
            var biases = layer.Biases;
            b.MatMulShared(ws.Normed, rows, layer.QueryProjection, ws.Queries, layer.KeyProjection, ws.Keys, layer.ValueProjection, ws.Values);
            AddQkvBiases(ws, rows, c, biases);
            StoreAndAttend(ws, cache.Storage, i, rows, c, InverseFrequencies, layer.Norms);
            b.MatMul(ws.AttentionOutput, layer.OutputProjection, ws.Delta, rows);
            if (biases.Output is { } outputBias) b.AddBias(ws.Delta, outputBias, rows, c.HiddenSize);
            b.AddRmsNorm(ws.Hidden, ws.Delta, layer.PostAttentionNorm, eps, ws.Normed, rows, c.HiddenSize);

            if (biases.Mlp)
            {
                // The biases come before SiLU, so the fused gate/up kernel cannot take them: the plain ops, in its order.
                b.MatMul(ws.Normed, layer.GateProjection, ws.Gate, rows);
                b.AddBias(ws.Gate, biases.Gate!, rows, c.IntermediateSize);
                b.MatMul(ws.Normed, layer.UpProjection, ws.Up, rows);
                b.AddBias(ws.Up, biases.Up!, rows, c.IntermediateSize);
                b.SiluMul(ws.Gate, ws.Up, ws.Gate, rows * c.IntermediateSize);
            }
            else
            {
                b.MatMulSiluMul(ws.Normed, layer.GateProjection, layer.UpProjection, ws.Gate, ws.Up, rows);
            }
            b.MatMul(ws.Gate, layer.DownProjection, ws.Delta, rows);
            if (biases.Down is { } downBias) b.AddBias(ws.Delta, downBias, rows, c.HiddenSize);
            // The fused add also normalizes for whatever reads the residual next: the next layer, or the LM head.
            var nextNorm = i + 1 < c.NumLayers ? Layers[i + 1].InputNorm : FinalNorm;
            b.AddRmsNorm(ws.Hidden, ws.Delta, nextNorm, eps, ws.Normed, rows, c.HiddenSize);
        }
    }

    /// <summary>The q/k/v projections' biases, where the layer has them (before the head norms and RoPE, as transformers adds them).</summary>
    internal void AddQkvBiases(ForwardWorkspace ws, int rows, LlamaConfig c, ProjectionBiases biases)
    {
        if (biases.Query is null) return;
        Backend.AddBias(ws.Queries, biases.Query, rows, c.QueryWidth);
        Backend.AddBias(ws.Keys, biases.Key!, rows, c.KvWidth);
        Backend.AddBias(ws.Values, biases.Value!, rows, c.KvWidth);
    }

    /// <summary>
    /// Query and key head norms (Qwen3), RoPE, KV store and attention of one layer for the staged rows: keys and values
    /// into their slots, attention through their windows (none: plain causal) over their own sequences. Shared with the
    /// Kangaroo adapter.
    /// </summary>
    internal void StoreAndAttend(ForwardWorkspace ws, KvCacheStorage cache, int layer, int rows, LlamaConfig c, WeightTensor inverseFrequencies,
        HeadNorms? norms)
    {
        var b = Backend;
        var shape = ws.Staged;
        if (norms is not null)
        {
            // Each head of each row is one RMSNorm row of head_dim elements, normalized in place.
            float eps = (float)c.RmsNormEps;
            b.RmsNorm(ws.Queries, norms.Query, eps, ws.Queries, rows * c.NumHeads, c.HeadDim);
            b.RmsNorm(ws.Keys, norms.Key, eps, ws.Keys, rows * c.NumKvHeads, c.HeadDim);
        }
        var slots = ws.SlotsArePositions ? ws.Positions : ws.Slots;
        b.RopeAndStoreKv(ws.Queries, ws.Keys, ws.Values, ws.Positions, inverseFrequencies, cache, layer, slots, rows, c.NumHeads, c.NumKvHeads, c.HeadDim);
        b.TreeAttention(ws.Queries, cache, layer, ws.Positions, ws.RecentSlots, shape.Window, ws.AttentionOutput, rows,
            c.NumHeads, c.NumKvHeads, c.HeadDim, shape.Sequences ? ws.Sequences : null, c.AttentionWindow(b));
    }

    /// <summary>
    /// Final norm + LM head for rows [<paramref name="firstRow"/>, <paramref name="firstRow"/> + <paramref name="rows"/>) of
    /// <see cref="ForwardWorkspace.Hidden"/>; the logits land in rows [0, rows) of <see cref="ForwardWorkspace.Logits"/>.
    /// </summary>
    public void ComputeLogits(ForwardWorkspace ws, int firstRow, int rows)
    {
        CheckRows(ws, firstRow + rows);
        int hidden = Config.HiddenSize;
        var input = ws.Hidden;
        if (firstRow > 0)
        {
            Backend.Copy(ws.Hidden, firstRow * hidden, ws.Delta, 0, rows * hidden);
            input = ws.Delta;
        }
        Backend.RmsNorm(input, FinalNorm, (float)Config.RmsNormEps, ws.Normed, rows, hidden);
        Backend.MatMul(ws.Normed, LmHead, ws.Logits, rows);
    }

    /// <summary>
    /// Appends <paramref name="tokens"/> to the sequence in <paramref name="cache"/> (in chunks of the workspace's row
    /// count) and leaves the logits of the last token in row 0 of <see cref="ForwardWorkspace.Logits"/>.
    /// </summary>
    public void Prefill(ReadOnlySpan<int> tokens, KvCache cache, ForwardWorkspace ws)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to process", nameof(tokens));
        if (cache.Length + tokens.Length > cache.Capacity)
            throw new InvalidRequestException($"{cache.Length + tokens.Length} positions needed, the context holds {cache.Capacity}");
        while (!tokens.IsEmpty)
        {
            int rows = Math.Min(tokens.Length, ws.MaxRows);
            Embed(ws, tokens[..rows], cache.Length);
            RunLayers(ws, cache, 0, Config.NumLayers, rows);
            cache.Advance(rows);
            tokens = tokens[rows..];
            if (tokens.IsEmpty) ComputeLogits(ws, rows - 1, 1);
        }
    }

    /// <summary>Logits <c>[tokens, vocab]</c> of every position of a fresh sequence, one forward call (tests, evaluation).</summary>
    public float[] EvaluateLogits(ReadOnlySpan<int> tokens)
    {
        using var cache = CreateCache(tokens.Length);
        using var ws = CreateWorkspace(tokens.Length);
        Embed(ws, tokens, 0);
        RunLayers(ws, cache, 0, Config.NumLayers, tokens.Length);
        ComputeLogits(ws, 0, tokens.Length);
        var logits = new float[tokens.Length * Config.VocabSize];
        Backend.Download(ws.Logits, 0, logits);
        return logits;
    }

    /// <summary>
    /// The first weight tensor (of the files this model owns) holding a NaN or an infinity, described with its file and
    /// element, or null: the search behind a <see cref="NonFiniteLogitsException"/>, run only once one occurred.
    /// </summary>
    public string? FindNonFiniteWeight() => FindNonFinite(_sourceViews);

    internal static string? FindNonFinite(IEnumerable<TensorView> views)
    {
        foreach (var view in views)
        {
            long at = view.FirstNonFinite();
            if (at >= 0) return $"tensor \"{view.Name}\" in {view.FilePath} holds a non-finite value (NaN or infinity) at element {at:N0}";
        }
        return null;
    }

    private static void CheckRows(ForwardWorkspace ws, int rows)
    {
        if (rows < 1 || rows > ws.MaxRows)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the workspace holds 1 to {ws.MaxRows} rows");
    }

    private void DisposeTensors()
    {
        foreach (var tensor in _tensors) tensor.Dispose();
        _tensors.Clear();
    }

    public void Dispose()
    {
        DisposeTensors();
        _ownedWeights?.Dispose();
    }
}
