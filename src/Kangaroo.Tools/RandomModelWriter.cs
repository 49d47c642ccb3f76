using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Kangaroo.Tokenization;
using Kangaroo.Weights;

namespace Kangaroo.Model;

/// <summary>How <see cref="RandomModelWriter"/> writes a model: element type, seed, sharding, tokenizer.</summary>
public sealed record RandomModelOptions
{
    public DType DType { get; init; } = DType.F16;

    /// <summary>Same seed, same configuration, same dtype → byte-identical files (whatever the core count).</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>
    /// Most tensor bytes per weight file (the Hugging Face max_shard_size convention: headers not counted; a tensor
    /// larger than this gets a file of its own). Null, or a model that fits, writes a single <c>model.safetensors</c>.
    /// </summary>
    public long? MaxShardBytes { get; init; }

    /// <summary>A directory whose <c>tokenizer.model</c> (and tokenizer_config.json, special_tokens_map.json) are copied.</summary>
    public string? TokenizerDirectory { get; init; }

    /// <summary>Replace a model already in the directory (its config, weights and index are deleted first).</summary>
    public bool Overwrite { get; init; }

    /// <summary>Bytes of tensor data written so far, reported as each slab is generated.</summary>
    public IProgress<LoadProgress>? Progress { get; init; }
}

/// <summary>What <see cref="RandomModelWriter.Write"/> wrote.</summary>
public sealed record RandomModelSummary(long Parameters, long TensorBytes, IReadOnlyList<string> WeightFiles, TimeSpan Elapsed);

/// <summary>
/// Writes a complete Hugging Face Llama model directory with deterministic random weights — <c>config.json</c>,
/// safetensors weights (optionally sharded, with <c>model.safetensors.index.json</c>) and optionally a tokenizer —
/// for benchmarks and tests that need real shapes where no trained model is at hand.
/// </summary>
/// <remarks>
/// <para>Streamed: tensors are generated in slabs of a few MiB into two reused buffers (one being written while the
/// other is filled), so memory stays flat whatever the model size; a 7B F16 model needs ~32 MiB of buffers.</para>
/// <para>Values: every tensor is split into fixed chunks of <see cref="ChunkElements"/> values, each drawn from its
/// own SplitMix64 stream seeded from (seed, tensor index, chunk index). Chunks are generated in parallel, and
/// because the chunking depends only on the shape, the output does not depend on the number of cores.</para>
/// <para>Scale: chosen so activations stay O(1) however deep the model is, and logits spread over a few units —
/// see <see cref="DistributionOf"/>.</para>
/// </remarks>
public static class RandomModelWriter
{
    /// <summary>Values per generator stream; also the F32 scratch each worker keeps on its stack (64 KiB).</summary>
    internal const int ChunkElements = 1 << 14;

    /// <summary>Chunks per slab: 8 Mi values, 16 MiB of F16 — big enough to keep every core busy, small enough to stream.</summary>
    private const int ChunksPerSlab = 512;

    private const string ShardFileNamePattern = "model-*-of-*.safetensors";

    /// <summary>Writes the model <paramref name="config"/> describes into <paramref name="directory"/> (created if needed).</summary>
    /// <exception cref="KangarooException">The directory already holds a model (and <see cref="RandomModelOptions.Overwrite"/> is off), the configuration is inconsistent, or the tokenizer does not fit.</exception>
    public static RandomModelSummary Write(string directory, LlamaConfig config, RandomModelOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(config);
        options ??= new RandomModelOptions();
        if (options.MaxShardBytes is <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxShardBytes, "MaxShardBytes must be positive");
        var stopwatch = Stopwatch.StartNew();

        // Validate everything before touching the directory: the config through the same parser that will read it.
        string configPath = Path.Combine(directory, LlamaConfig.FileName);
        string configJson = ConfigJson(config, options.DType);
        LlamaConfig.Parse(configJson, configPath);
        var tensors = LlamaModel.ExpectedTensors(config);
        if (options.TokenizerDirectory is { } tokenizerDirectory)
            CheckTokenizerFits(tokenizerDirectory, config);

        Directory.CreateDirectory(directory);
        PrepareDirectory(directory, options.Overwrite);
        if (options.TokenizerDirectory is not null)
            CopyTokenizer(options.TokenizerDirectory, directory);

        var shards = PlanShards(tensors, options.DType, options.MaxShardBytes);
        long totalBytes = 0, parameters = 0;
        foreach (var (_, shape) in tensors)
        {
            long elements = ElementCount(shape);
            parameters += elements;
            totalBytes += elements * options.DType.SizeInBytes();
        }

        var files = new List<string>(shards.Count);
        var streamer = new SlabStreamer(options.DType, LargestTensorBytes(tensors, options.DType), totalBytes, options.Progress);
        int firstTensor = 0;
        for (int s = 0; s < shards.Count; s++)
        {
            string fileName = shards.Count == 1 ? WeightStore.SingleFileName : $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            string path = Path.Combine(directory, fileName);
            streamer.WriteFile(path, config, tensors, firstTensor, shards[s], options.Seed, cancellationToken);
            files.Add(path);
            firstTensor += shards[s];
        }
        if (shards.Count > 1)
            WriteIndex(Path.Combine(directory, WeightStore.IndexFileName), tensors, shards, files, totalBytes);
        // config.json last: a directory only looks like a model once its weights are complete.
        File.WriteAllText(configPath, configJson);
        return new RandomModelSummary(parameters, totalBytes, files, stopwatch.Elapsed);
    }

    /// <summary><c>config.json</c> text for <paramref name="config"/> in the style of a Hugging Face LlamaForCausalLM checkpoint.</summary>
    public static string ConfigJson(LlamaConfig config, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartArray("architectures");
            json.WriteStringValue(config.ModelType switch
            {
                "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM", "qwen3" => "Qwen3ForCausalLM", _ => "LlamaForCausalLM",
            });
            json.WriteEndArray();
            // Qwen2's q/k/v biases need no switch; Llama's and Qwen3's attention_bias covers all four projections.
            json.WriteBoolean("attention_bias", config.OutputBias);
            json.WriteNumber("attention_dropout", 0.0);
            if (config.BosTokenId is int bos) json.WriteNumber("bos_token_id", bos);
            if (config.EosTokenIds.Count == 1)
            {
                json.WriteNumber("eos_token_id", config.EosTokenIds[0]);
            }
            else if (config.EosTokenIds.Count > 1)
            {
                json.WriteStartArray("eos_token_id");
                foreach (int eos in config.EosTokenIds) json.WriteNumberValue(eos);
                json.WriteEndArray();
            }
            // Only when it differs, as transformers does for Llama (readers then derive hidden / heads); Qwen3 always writes it.
            if (config.HeadDim * config.NumHeads != config.HiddenSize || config.QueryKeyNorm)
                json.WriteNumber("head_dim", config.HeadDim);
            json.WriteString("hidden_act", "silu");
            json.WriteNumber("hidden_size", config.HiddenSize);
            json.WriteNumber("initializer_range", 0.02);
            json.WriteNumber("intermediate_size", config.IntermediateSize);
            json.WriteNumber("max_position_embeddings", config.MaxPositionEmbeddings);
            json.WriteBoolean("mlp_bias", config.MlpBias);
            json.WriteString("model_type", config.ModelType);
            json.WriteNumber("num_attention_heads", config.NumHeads);
            json.WriteNumber("num_hidden_layers", config.NumLayers);
            json.WriteNumber("num_key_value_heads", config.NumKvHeads);
            json.WriteNumber("pretraining_tp", 1);
            json.WriteNumber("rms_norm_eps", config.RmsNormEps);
            if (config.RopeScaling is { } scaling)
            {
                json.WriteStartObject("rope_scaling");
                json.WriteNumber("factor", scaling.Factor);
                json.WriteNumber("high_freq_factor", scaling.HighFreqFactor);
                json.WriteNumber("low_freq_factor", scaling.LowFreqFactor);
                json.WriteNumber("original_max_position_embeddings", scaling.OriginalMaxPositionEmbeddings);
                json.WriteString("rope_type", scaling.Type);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("rope_scaling");
            }
            json.WriteNumber("rope_theta", config.RopeTheta);
            if (config.ModelType == "mistral")
            {
                if (config.SlidingWindow is int window) json.WriteNumber("sliding_window", window);
                else json.WriteNull("sliding_window");
            }
            if (config.ModelType is "qwen2" or "qwen3")
            {
                json.WriteNull("sliding_window");
                json.WriteBoolean("use_sliding_window", false);
            }
            json.WriteBoolean("tie_word_embeddings", config.TieWordEmbeddings);
            json.WriteString("torch_dtype", TorchDTypeName(dtype));
            json.WriteBoolean("use_cache", true);
            json.WriteNumber("vocab_size", config.VocabSize);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    public static string TorchDTypeName(DType dtype) => dtype switch
    {
        DType.F32 => "float32",
        DType.F16 => "float16",
        DType.BF16 => "bfloat16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>Values of a tensor are uniform in [Center − HalfWidth, Center + HalfWidth).</summary>
    internal readonly record struct Distribution(float Center, float HalfWidth);

    /// <summary>
    /// Norm weights ~ U(0.8, 1.2), biases ~ U(−0.1, 0.1). Embeddings have unit standard deviation (2 / √hidden when tied, because they are
    /// then also the LM head). Linear [out, in] weights ~ U(−1, 1)·√(3 / in)·gain, which keeps a unit-variance input at
    /// variance gain²: gain 1.6 for q/k so attention is not uniform, 1 / √(2·layers) for o_proj and down_proj so the
    /// residual stream grows to only about √2 × its initial scale after all layers, and 2 for the LM head so logits
    /// spread over a few units.
    /// </summary>
    internal static Distribution DistributionOf(string name, int[] shape, LlamaConfig config)
    {
        const double UniformToUnitStd = 1.7320508075688772; // √3: U(−√3, √3) has variance 1.
        if (name.EndsWith(".bias", StringComparison.Ordinal)) return new Distribution(0f, 0.1f);
        if (shape.Length == 1) return new Distribution(1f, 0.2f);
        if (name == "model.embed_tokens.weight")
        {
            double std = config.TieWordEmbeddings ? 2.0 / Math.Sqrt(config.HiddenSize) : 1.0;
            return new Distribution(0f, (float)(std * UniformToUnitStd));
        }
        double gain = name switch
        {
            _ when name.EndsWith("q_proj.weight", StringComparison.Ordinal) => 1.6,
            _ when name.EndsWith("k_proj.weight", StringComparison.Ordinal) => 1.6,
            _ when name.EndsWith("o_proj.weight", StringComparison.Ordinal) => 1.0 / Math.Sqrt(2.0 * config.NumLayers),
            _ when name.EndsWith("down_proj.weight", StringComparison.Ordinal) => 1.0 / Math.Sqrt(2.0 * config.NumLayers),
            "lm_head.weight" => 2.0,
            _ => 1.0,
        };
        return new Distribution(0f, (float)(gain * UniformToUnitStd / Math.Sqrt(shape[^1])));
    }

    /// <summary>
    /// Writes a random Kangaroo adapter for a base model of <paramref name="baseConfig"/> into <paramref name="directory"/>
    /// (config.json with exit_layer, model.safetensors with the reference tensor names): for timing and plumbing, since a
    /// random adapter drafts badly. Adapters are small (4·hidden² parameters), so this one is built in memory.
    /// </summary>
    public static void WriteAdapter(string directory, LlamaConfig baseConfig, int exitLayer, DType dtype = DType.F16, ulong seed = 2)
    {
        if (exitLayer < 1 || exitLayer >= baseConfig.NumLayers)
            throw new ArgumentOutOfRangeException(nameof(exitLayer), exitLayer, $"must be in [1, {baseConfig.NumLayers - 1}]");
        Directory.CreateDirectory(directory);
        var adapterConfig = baseConfig with { NumLayers = 1 };
        int h = baseConfig.HiddenSize, q = baseConfig.QueryWidth, kv = baseConfig.KvWidth;
        (string Name, int[] Shape, Distribution Values)[] tensors =
        [
            ("layers.0.input_layernorm.weight", [h], new Distribution(1f, 0.2f)),
            ("layers.0.self_attn.q_proj.weight", [q, h], Linear(1.6, h)),
            ("layers.0.self_attn.k_proj.weight", [kv, h], Linear(1.6, h)),
            ("layers.0.self_attn.v_proj.weight", [kv, h], Linear(1.0, h)),
            ("layers.0.self_attn.o_proj.weight", [h, q], Linear(0.5, q)),
            ("norm.weight", [h], new Distribution(1f, 0.2f)),
            .. (baseConfig.QueryKeyNorm
                ? ((string, int[], Distribution)[])[
                    ("layers.0.self_attn.q_norm.weight", [baseConfig.HeadDim], new Distribution(1f, 0.2f)),
                    ("layers.0.self_attn.k_norm.weight", [baseConfig.HeadDim], new Distribution(1f, 0.2f))]
                : []),
            .. (baseConfig.QkvBias
                ? ((string, int[], Distribution)[])[
                    ("layers.0.self_attn.q_proj.bias", [q], new Distribution(0f, 0.1f)),
                    ("layers.0.self_attn.k_proj.bias", [kv], new Distribution(0f, 0.1f)),
                    ("layers.0.self_attn.v_proj.bias", [kv], new Distribution(0f, 0.1f))]
                : []),
            .. (baseConfig.OutputBias ? ((string, int[], Distribution)[])[("layers.0.self_attn.o_proj.bias", [h], new Distribution(0f, 0.1f))] : []),
        ];
        var writer = new SafeTensorsWriter();
        for (int i = 0; i < tensors.Length; i++)
        {
            var (name, shape, distribution) = tensors[i];
            var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
            FillChunk(values, TensorSeed(seed, i), 0, distribution);
            writer.Add(name, dtype, shape, values);
        }
        writer.WriteTo(Path.Combine(directory, "model.safetensors"));
        string config = ConfigJson(adapterConfig, dtype).TrimEnd();
        config = config[..config.LastIndexOf('}')].TrimEnd() + $",\n  \"exit_layer\": {exitLayer}\n}}\n";
        File.WriteAllText(Path.Combine(directory, LlamaConfig.FileName), config);

        static Distribution Linear(double gain, int inputs) => new(0f, (float)(gain * 1.7320508075688772 / Math.Sqrt(inputs)));
    }

    /// <summary>The seed of a tensor's chunk streams: the tensor index is mixed in so tensors are independent.</summary>
    internal static ulong TensorSeed(ulong seed, int tensorIndex) => SplitMix64.Mix(seed ^ SplitMix64.Mix((ulong)tensorIndex + 1));

    /// <summary>
    /// Fills <paramref name="destination"/> with chunk <paramref name="chunkIndex"/> of a tensor: uniform values in
    /// [center − halfWidth, center + halfWidth) on a 2⁻²³ grid (24 bits each, two per 64-bit draw).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void FillChunk(Span<float> destination, ulong tensorSeed, long chunkIndex, Distribution distribution)
    {
        var random = new SplitMix64(SplitMix64.Mix(tensorSeed + (ulong)chunkIndex * SplitMix64.Increment));
        float center = distribution.Center;
        float scale = distribution.HalfWidth * (1f / (1 << 23));
        int i = 0;
        for (; i + 1 < destination.Length; i += 2)
        {
            ulong bits = random.Next();
            // Arithmetic shifts of the two signed 32-bit halves: uniform integers in [−2²³, 2²³).
            destination[i] = center + scale * ((int)(uint)bits >> 8);
            destination[i + 1] = center + scale * ((int)(bits >> 32) >> 8);
        }
        if (i < destination.Length)
            destination[i] = center + scale * ((int)(uint)random.Next() >> 8);
    }

    /// <summary>How many consecutive tensors (in <paramref name="tensors"/> order) each file holds.</summary>
    internal static List<int> PlanShards(IReadOnlyList<(string Name, int[] Shape)> tensors, DType dtype, long? maxShardBytes)
    {
        var counts = new List<int>();
        if (maxShardBytes is not long limit)
        {
            counts.Add(tensors.Count);
            return counts;
        }
        long inShard = 0;
        int count = 0;
        foreach (var (_, shape) in tensors)
        {
            long bytes = ElementCount(shape) * dtype.SizeInBytes();
            if (count > 0 && inShard + bytes > limit)
            {
                counts.Add(count);
                count = 0;
                inShard = 0;
            }
            count++;
            inShard += bytes;
        }
        counts.Add(count);
        return counts;
    }

    private static long ElementCount(int[] shape)
    {
        long elements = 1;
        foreach (int d in shape) elements *= d;
        return elements;
    }

    private static long LargestTensorBytes(IReadOnlyList<(string Name, int[] Shape)> tensors, DType dtype)
    {
        long largest = 0;
        foreach (var (_, shape) in tensors) largest = Math.Max(largest, ElementCount(shape) * dtype.SizeInBytes());
        return largest;
    }

    private static void CheckTokenizerFits(string tokenizerDirectory, LlamaConfig config)
    {
        var tokenizer = TextTokenizer.Load(tokenizerDirectory);
        if (tokenizer.VocabularySize > config.VocabSize)
            throw new KangarooException(
                $"the tokenizer in {tokenizerDirectory} has {tokenizer.VocabularySize} pieces but the model's vocabulary is {config.VocabSize}: its ids would fall outside the embeddings");
    }

    /// <summary>Refuses to mix with an existing model, or deletes it when asked: stale shards would confuse readers.</summary>
    private static void PrepareDirectory(string directory, bool overwrite)
    {
        var existing = new List<string>();
        foreach (string name in new[] { LlamaConfig.FileName, WeightStore.SingleFileName, WeightStore.IndexFileName })
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path)) existing.Add(path);
        }
        existing.AddRange(Directory.EnumerateFiles(directory, ShardFileNamePattern));
        if (existing.Count == 0) return;
        if (!overwrite)
            throw new KangarooException($"{directory} already holds a model ({Path.GetFileName(existing[0])}); choose an empty directory or overwrite it");
        foreach (string path in existing) File.Delete(path);
    }

    private static void CopyTokenizer(string source, string directory)
    {
        if (Path.GetFullPath(source) == Path.GetFullPath(directory)) return;
        // The file the engine reads (tokenizer.model, else a tokenizer.json), then the settings beside it.
        string file = TextTokenizer.Load(source).FileName;
        File.Copy(Path.Combine(source, file), Path.Combine(directory, file), overwrite: true);
        foreach (string optional in new[] { TokenizerConfig.FileName, "special_tokens_map.json" })
        {
            string path = Path.Combine(source, optional);
            if (File.Exists(path)) File.Copy(path, Path.Combine(directory, optional), overwrite: true);
        }
    }

    private static void WriteIndex(string path, IReadOnlyList<(string Name, int[] Shape)> tensors, List<int> shards,
        List<string> files, long totalBytes)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", totalBytes);
        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        int tensor = 0;
        for (int s = 0; s < shards.Count; s++)
        {
            string fileName = Path.GetFileName(files[s]);
            for (int end = tensor + shards[s]; tensor < end; tensor++) json.WriteString(tensors[tensor].Name, fileName);
        }
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>
    /// SplitMix64 (Steele, Lea and Flood, 2014): one add and a 64-bit finalizer per draw — fast, statistically sound for
    /// weights, and seedable from any 64-bit value, which makes per-chunk streams trivial.
    /// </summary>
    internal struct SplitMix64(ulong state)
    {
        public const ulong Increment = 0x9E3779B97F4A7C15;

        private ulong _state = state;

        public ulong Next() => Mix(_state += Increment);

        public static ulong Mix(ulong z)
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            return z ^ (z >> 31);
        }
    }

    /// <summary>
    /// Generates tensors slab by slab into two reused buffers and writes them, the write of one slab overlapping the
    /// generation of the next.
    /// </summary>
    private sealed class SlabStreamer
    {
        private readonly DType _dtype;
        private readonly byte[][] _buffers;
        private readonly long _totalBytes;
        private readonly IProgress<LoadProgress>? _progress;
        private long _writtenBytes;
        private int _nextBuffer;

        public SlabStreamer(DType dtype, long largestTensorBytes, long totalBytes, IProgress<LoadProgress>? progress)
        {
            _dtype = dtype;
            // A whole number of chunks (so chunk indices line up across slabs), or the largest tensor when that is
            // smaller — then every tensor is a single slab and the question does not arise.
            int slabBytes = (int)Math.Min((long)ChunkElements * ChunksPerSlab * dtype.SizeInBytes(), Math.Max(largestTensorBytes, 1));
            _buffers = [new byte[slabBytes], new byte[slabBytes]];
            _totalBytes = totalBytes;
            _progress = progress;
        }

        private long SlabElements => _buffers[0].Length / _dtype.SizeInBytes();

        public void WriteFile(string path, LlamaConfig config, IReadOnlyList<(string Name, int[] Shape)> tensors,
            int firstTensor, int tensorCount, ulong seed, CancellationToken cancellationToken)
        {
            var header = new SafeTensorsWriter().AddMetadata("format", "pt");
            for (int t = firstTensor; t < firstTensor + tensorCount; t++)
                header.Declare(tensors[t].Name, _dtype, tensors[t].Shape);

            var fileOptions = new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                Share = FileShare.None,
                // Reserving the space up front fails fast on a full disk instead of after gigabytes.
                PreallocationSize = header.DataByteLength,
                BufferSize = 0, // slabs are large: no point copying them through a FileStream buffer.
            };
            using var stream = new FileStream(path, fileOptions);
            header.WriteHeader(stream);
            Task pendingWrite = Task.CompletedTask;
            try
            {
                for (int t = firstTensor; t < firstTensor + tensorCount; t++)
                {
                    var (name, shape) = tensors[t];
                    var distribution = DistributionOf(name, shape, config);
                    ulong tensorSeed = TensorSeed(seed, t);
                    long elements = ElementCount(shape);
                    for (long start = 0; start < elements; start += SlabElements)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        int count = (int)Math.Min(SlabElements, elements - start);
                        byte[] buffer = _buffers[_nextBuffer];
                        _nextBuffer ^= 1;
                        GenerateSlab(buffer, start, count, tensorSeed, distribution);
                        // The other buffer's write must finish before this one starts: writes stay in order, and the
                        // buffer filled next is free.
                        pendingWrite.GetAwaiter().GetResult();
                        int byteCount = count * _dtype.SizeInBytes();
                        pendingWrite = stream.WriteAsync(buffer.AsMemory(0, byteCount), cancellationToken).AsTask();
                        _writtenBytes += byteCount;
                        _progress?.Report(new LoadProgress(_writtenBytes, _totalBytes, name));
                    }
                }
            }
            finally
            {
                // Never leave a write running on a buffer (or a stream) that is about to be reused or closed.
                try { pendingWrite.GetAwaiter().GetResult(); }
                catch when (cancellationToken.IsCancellationRequested) { }
            }
        }

        /// <summary>Values [<paramref name="start"/>, start + count) of a tensor, as <see cref="_dtype"/>, into <paramref name="buffer"/>.</summary>
        private void GenerateSlab(byte[] buffer, long start, int count, ulong tensorSeed, Distribution distribution)
        {
            // Slabs are whole numbers of chunks, so chunk c of the slab is chunk firstChunk + c of the tensor.
            long firstChunk = start / ChunkElements;
            int chunks = (count + ChunkElements - 1) / ChunkElements;
            DType dtype = _dtype;
            Parallel.For(0, chunks, c =>
            {
                int offset = c * ChunkElements;
                GenerateChunk(buffer, offset, Math.Min(ChunkElements, count - offset), dtype, tensorSeed, firstChunk + c, distribution);
            });
        }

        /// <summary>One chunk: F32 values on the stack, converted into the slab at element <paramref name="offset"/>.</summary>
        /// <remarks>
        /// Optimized from the first call: a write is over in seconds and calls this only a few thousand times, too
        /// few for tiered compilation to promote its loop early — measured, that halved throughput. No zeroing of
        /// the scratch either: <see cref="FillChunk"/> overwrites all of it.
        /// </remarks>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        [SkipLocalsInit]
        private static void GenerateChunk(byte[] buffer, int offset, int length, DType dtype, ulong tensorSeed, long chunkIndex,
            Distribution distribution)
        {
            Span<float> values = stackalloc float[ChunkElements];
            values = values[..length];
            FillChunk(values, tensorSeed, chunkIndex, distribution);
            int elementSize = dtype.SizeInBytes();
            DTypeConversion.FromFloat32(dtype, values, buffer.AsSpan(offset * elementSize, length * elementSize));
        }
    }
}
