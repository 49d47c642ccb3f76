using System.Globalization;
using Kangaroo.Model;
using Kangaroo.Tokenization;
using Kangaroo.Weights;

namespace Kangaroo.Gguf;

/// <summary>
/// A Llama model directory (config.json, safetensors, SentencePiece tokenizer.model) as one GGUF file that llama.cpp
/// loads: its tensor names, the llama.* and tokenizer.ggml.* metadata, and the matrices in their stored type (F32, F16,
/// BF16; norm weights widened to F32, which llama.cpp's CPU ops need). q_proj and k_proj rows are reordered for llama.cpp's rotary convention, which pairs elements 2i and 2i + 1 of a
/// head where Hugging Face pairs i and i + head_dim / 2. What llama.cpp would read differently (rope scaling, sliding
/// windows, biases, other tokenizers, other architectures) is refused by name.
/// </summary>
public static class LlamaGgufExporter
{
    public static void Export(string modelDirectory, string outputPath)
    {
        var config = LlamaConfig.LoadFromDirectory(modelDirectory);
        if (config.ModelType != "llama")
            throw new KangarooException($"{config.SourcePath}: model_type \"{config.ModelType}\": the GGUF export writes Llama models only");
        if (config.RopeScaling is not null)
            throw new KangarooException($"{config.SourcePath}: rope_scaling is set: the GGUF export does not write rope scaling");
        if (config.SlidingWindow is not null)
            throw new KangarooException($"{config.SourcePath}: sliding_window is set: the GGUF export does not write sliding-window attention");
        string tokenizerPath = Path.Combine(modelDirectory, TextTokenizer.SentencePieceFileName);
        if (!File.Exists(tokenizerPath))
            throw new KangarooException($"{modelDirectory}: no {TextTokenizer.SentencePieceFileName}: the GGUF export writes SentencePiece vocabularies only");
        SentencePieceModelProto vocabulary;
        try
        {
            vocabulary = SentencePieceModelProto.Parse(File.ReadAllBytes(tokenizerPath));
        }
        catch (FormatException e)
        {
            throw new KangarooException($"{tokenizerPath}: not a SentencePiece model: {e.Message}", e);
        }
        if (vocabulary.ModelType is not (SentencePieceModelType.Bpe or SentencePieceModelType.Unigram))
            throw new KangarooException($"{tokenizerPath}: a SentencePiece {vocabulary.ModelType} model: llama.cpp reads BPE and unigram vocabularies");

        using var weights = WeightStore.OpenDirectory(modelDirectory);
        var bias = weights.TensorNames.FirstOrDefault(n => n.EndsWith(".bias", StringComparison.Ordinal));
        if (bias is not null) throw new KangarooException($"{modelDirectory}: tensor {bias}: the GGUF export writes Llama models without biases");

        var gguf = new GgufWriter();
        var types = new List<DType>();
        AddTensors(gguf, weights, config, types);
        AddModelMetadata(gguf, config, Path.GetFileName(Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar)), types);
        AddVocabulary(gguf, vocabulary, config, TokenizerConfig.Load(modelDirectory));

        string temporary = outputPath + ".partial";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
                gguf.Write(file);
            File.Move(temporary, outputPath, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    private static void AddModelMetadata(GgufWriter gguf, LlamaConfig c, string name, List<DType> types)
    {
        gguf.Add("general.architecture", "llama");
        gguf.Add("general.name", name);
        // llama_ftype: 0 all F32, 1 mostly F16, 32 mostly BF16 (the type most of the matrices are in).
        DType most = types.GroupBy(t => t).OrderByDescending(g => g.Count()).First().Key;
        gguf.Add("general.file_type", most switch { DType.F16 => 1u, DType.BF16 => 32u, _ => 0u });
        gguf.Add("llama.context_length", (uint)c.MaxPositionEmbeddings);
        gguf.Add("llama.embedding_length", (uint)c.HiddenSize);
        gguf.Add("llama.block_count", (uint)c.NumLayers);
        gguf.Add("llama.feed_forward_length", (uint)c.IntermediateSize);
        gguf.Add("llama.rope.dimension_count", (uint)c.HeadDim);
        gguf.Add("llama.attention.head_count", (uint)c.NumHeads);
        gguf.Add("llama.attention.head_count_kv", (uint)c.NumKvHeads);
        if (c.HeadDim * c.NumHeads != c.HiddenSize)
        {
            gguf.Add("llama.attention.key_length", (uint)c.HeadDim);
            gguf.Add("llama.attention.value_length", (uint)c.HeadDim);
        }
        gguf.Add("llama.attention.layer_norm_rms_epsilon", (float)c.RmsNormEps);
        gguf.Add("llama.rope.freq_base", (float)c.RopeTheta);
        gguf.Add("llama.vocab_size", (uint)c.VocabSize);
    }

    // BOS/EOS and whether prompts start with BOS as our tokenizer decides them (tokenizer_config.json over the model's
    // defaults), so that both engines see the same prompt tokens.
    private static void AddVocabulary(GgufWriter gguf, SentencePieceModelProto v, LlamaConfig c, TokenizerConfig tokenizer)
    {
        if (v.Pieces.Length != c.VocabSize)
            throw new KangarooException($"tokenizer.model holds {v.Pieces.Length} pieces, config.json's vocab_size is {c.VocabSize}: the GGUF export needs one piece per embedding row");
        gguf.Add("tokenizer.ggml.model", "llama");
        gguf.Add("tokenizer.ggml.tokens", v.Pieces);
        gguf.Add("tokenizer.ggml.scores", v.Scores);
        gguf.Add("tokenizer.ggml.token_type", v.Types.Select(t => (int)t).ToArray());
        int bos = c.BosTokenId ?? v.BosId, eos = c.EosTokenIds.Count > 0 ? c.EosTokenIds[0] : v.EosId;
        if (bos >= 0) gguf.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        if (eos >= 0) gguf.Add("tokenizer.ggml.eos_token_id", (uint)eos);
        gguf.Add("tokenizer.ggml.unknown_token_id", (uint)v.UnknownId);
        gguf.Add("tokenizer.ggml.add_bos_token", bos >= 0 && (tokenizer.AddBosToken ?? true));
        gguf.Add("tokenizer.ggml.add_eos_token", tokenizer.AddEosToken ?? false);
        gguf.Add("tokenizer.ggml.add_space_prefix", v.AddDummyPrefix);
    }

    private static void AddTensors(GgufWriter gguf, WeightStore weights, LlamaConfig c, List<DType> types)
    {
        void Add(string source, string target, int permuteHeads = 0)
        {
            var view = weights.Get(source);
            var type = view.DType switch
            {
                DType.F32 => GgmlType.F32,
                DType.F16 => GgmlType.F16,
                DType.BF16 => GgmlType.BF16,
                var other => throw new KangarooException($"{view.FilePath}: tensor {source} is {other}: the GGUF export writes F32, F16 and BF16"),
            };
            if (view.Shape.Count == 2) types.Add(view.DType);
            if (view.Shape.Count == 1 && type != GgmlType.F32)
            {
                // llama.cpp's CPU ops take norm weights in F32 only (its converter writes every 1-D tensor so): widened exactly.
                gguf.AddTensor(target, view.Shape, GgmlType.F32, s => CopyAsFloat32(view, s));
                return;
            }
            gguf.AddTensor(target, view.Shape, type, permuteHeads == 0 ? s => Copy(view, s) : s => CopyPermuted(view, permuteHeads, s));
        }

        Add("model.embed_tokens.weight", "token_embd.weight");
        for (int i = 0; i < c.NumLayers; i++)
        {
            string layer = string.Create(CultureInfo.InvariantCulture, $"model.layers.{i}."), block = string.Create(CultureInfo.InvariantCulture, $"blk.{i}.");
            Add(layer + "input_layernorm.weight", block + "attn_norm.weight");
            Add(layer + "self_attn.q_proj.weight", block + "attn_q.weight", c.NumHeads);
            Add(layer + "self_attn.k_proj.weight", block + "attn_k.weight", c.NumKvHeads);
            Add(layer + "self_attn.v_proj.weight", block + "attn_v.weight");
            Add(layer + "self_attn.o_proj.weight", block + "attn_output.weight");
            Add(layer + "post_attention_layernorm.weight", block + "ffn_norm.weight");
            Add(layer + "mlp.gate_proj.weight", block + "ffn_gate.weight");
            Add(layer + "mlp.up_proj.weight", block + "ffn_up.weight");
            Add(layer + "mlp.down_proj.weight", block + "ffn_down.weight");
        }
        Add("model.norm.weight", "output_norm.weight");
        // Tied embeddings: llama.cpp uses token_embd for the output when output.weight is absent.
        if (!c.TieWordEmbeddings && weights.Contains("lm_head.weight")) Add("lm_head.weight", "output.weight");
    }

    private static unsafe void Copy(TensorView view, Stream output)
    {
        const long chunk = 1L << 30;
        for (long offset = 0; offset < view.ByteLength; offset += chunk)
            output.Write(new ReadOnlySpan<byte>(view.Pointer + offset, (int)Math.Min(chunk, view.ByteLength - offset)));
    }

    private static void CopyAsFloat32(TensorView view, Stream output)
    {
        var values = new float[view.ElementCount];
        DTypeConversion.ToFloat32(view.DType, view.Bytes, values);
        output.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }

    /// <summary>
    /// Rows of a [heads · head_dim, columns] projection in llama.cpp's rotary order: within each head, output row 2i + j
    /// is input row j · head_dim / 2 + i (j = 0, 1), as its converter's permute does.
    /// </summary>
    internal static unsafe void CopyPermuted(TensorView view, int heads, Stream output)
    {
        int rows = view.Shape[0];
        if (rows % (2 * heads) != 0)
            throw new KangarooException($"{view.FilePath}: tensor {view.Name} has {rows} rows, not a multiple of 2 × {heads} heads");
        int headDim = rows / heads, half = headDim / 2;
        long rowBytes = view.ByteLength / rows;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                {
                    long source = (long)h * headDim + j * half + i;
                    output.Write(new ReadOnlySpan<byte>(view.Pointer + source * rowBytes, (int)rowBytes));
                }
    }
}
