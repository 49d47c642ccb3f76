using System.Text;
using Kangaroo.Gguf;
using Kangaroo.Weights;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Weights;

/// <summary>
/// The GGUF export of the demo model read back by a reader written here from the format's description (header, typed
/// key/values, tensor infos innermost dimension first, aligned data), so a mistake in the writer does not cancel out.
/// </summary>
public sealed class GgufExportTests
{
    private sealed record TensorInfo(string Name, long[] Dims, uint Type, long Offset);

    private sealed class GgufFile
    {
        public required uint Version { get; init; }
        public required Dictionary<string, object> Metadata { get; init; }
        public required List<TensorInfo> Tensors { get; init; }
        public required long DataStart { get; init; }
        public required byte[] Bytes { get; init; }

        public ReadOnlySpan<byte> Data(TensorInfo t, long length) => Bytes.AsSpan((int)(DataStart + t.Offset), (int)length);
    }

    private static GgufFile Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        using var r = new BinaryReader(new MemoryStream(bytes));
        Assert.Equal("GGUF"u8.ToArray(), r.ReadBytes(4));
        uint version = r.ReadUInt32();
        long tensors = (long)r.ReadUInt64(), pairs = (long)r.ReadUInt64();
        string ReadString() => Encoding.UTF8.GetString(r.ReadBytes((int)r.ReadUInt64()));
        object ReadValue(uint type) => type switch
        {
            4 => r.ReadUInt32(),
            5 => r.ReadInt32(),
            6 => r.ReadSingle(),
            7 => r.ReadByte() != 0,
            8 => ReadString(),
            9 => ReadArray(),
            _ => throw new FormatException($"value type {type}"),
        };
        object ReadArray()
        {
            uint itemType = r.ReadUInt32();
            long count = (long)r.ReadUInt64();
            var items = new List<object>();
            for (long i = 0; i < count; i++) items.Add(ReadValue(itemType));
            return items;
        }
        var metadata = new Dictionary<string, object>();
        for (long i = 0; i < pairs; i++)
        {
            string key = ReadString();
            metadata.Add(key, ReadValue(r.ReadUInt32()));
        }
        var infos = new List<TensorInfo>();
        for (long i = 0; i < tensors; i++)
        {
            string name = ReadString();
            var dims = new long[r.ReadUInt32()];
            for (int d = 0; d < dims.Length; d++) dims[d] = (long)r.ReadUInt64();
            infos.Add(new TensorInfo(name, dims, r.ReadUInt32(), (long)r.ReadUInt64()));
        }
        long dataStart = (r.BaseStream.Position + 31) / 32 * 32;
        return new GgufFile { Version = version, Metadata = metadata, Tensors = infos, DataStart = dataStart, Bytes = bytes };
    }

    [Fact]
    public void DemoModelExportsWithLlamaMetadataVocabularyAndPermutedQueryKeyRows()
    {
        using var dir = new TestDirectory("gguf");
        string output = dir.Combine("demo.gguf");
        LlamaGgufExporter.Export(TestModels.DemoDirectory, output);
        var file = Read(output);
        var config = Kangaroo.Model.LlamaConfig.LoadFromDirectory(TestModels.DemoDirectory);

        Assert.Equal(3u, file.Version);
        Assert.Equal("llama", file.Metadata["general.architecture"]);
        Assert.Equal((uint)config.NumLayers, file.Metadata["llama.block_count"]);
        Assert.Equal((uint)config.NumHeads, file.Metadata["llama.attention.head_count"]);
        Assert.Equal((uint)config.NumKvHeads, file.Metadata["llama.attention.head_count_kv"]);
        Assert.Equal((uint)config.HeadDim, file.Metadata["llama.rope.dimension_count"]);
        Assert.Equal((float)config.RmsNormEps, file.Metadata["llama.attention.layer_norm_rms_epsilon"]);
        Assert.Equal(1u, file.Metadata["general.file_type"]);   // mostly F16
        Assert.Equal(config.VocabSize, ((List<object>)file.Metadata["tokenizer.ggml.tokens"]).Count);
        Assert.Equal(config.VocabSize, ((List<object>)file.Metadata["tokenizer.ggml.scores"]).Count);
        Assert.Equal("llama", file.Metadata["tokenizer.ggml.model"]);
        Assert.True(file.Metadata.ContainsKey("tokenizer.ggml.add_space_prefix"));
        if (config.HeadDim * config.NumHeads != config.HiddenSize) Assert.Equal((uint)config.HeadDim, file.Metadata["llama.attention.key_length"]);

        // Embedding, norms and two projections per layer plus the MLP: 9 per layer, 2 (or 3 with an untied head) outside.
        int expected = 9 * config.NumLayers + 2 + (config.TieWordEmbeddings ? 0 : 1);
        Assert.Equal(expected, file.Tensors.Count);
        Assert.All(file.Tensors, t => Assert.Equal(0, t.Offset % 32));

        using var weights = WeightStore.OpenDirectory(TestModels.DemoDirectory);
        var embed = weights.Get("model.embed_tokens.weight");
        var embedInfo = file.Tensors.Single(t => t.Name == "token_embd.weight");
        Assert.Equal([(long)embed.Shape[1], embed.Shape[0]], embedInfo.Dims);
        Assert.Equal(1u, embedInfo.Type);
        Assert.True(embed.Bytes.SequenceEqual(file.Data(embedInfo, embed.ByteLength)), "token_embd.weight differs from the safetensors bytes");

        foreach (var (source, target, heads) in new[] { ("q_proj", "attn_q", config.NumHeads), ("k_proj", "attn_k", config.NumKvHeads) })
        {
            var view = weights.Get($"model.layers.3.self_attn.{source}.weight");
            var info = file.Tensors.Single(t => t.Name == $"blk.3.{target}.weight");
            var written = file.Data(info, view.ByteLength);
            int rows = view.Shape[0], rowBytes = (int)(view.ByteLength / rows), headDim = rows / heads;
            for (int row = 0; row < rows; row++)
            {
                // llama.cpp's order: within a head, row 2i + j holds Hugging Face row j · head_dim / 2 + i.
                int h = row / headDim, within = row % headDim, i = within / 2, j = within % 2;
                int sourceRow = h * headDim + j * (headDim / 2) + i;
                Assert.True(view.Bytes.Slice(sourceRow * rowBytes, rowBytes).SequenceEqual(written.Slice(row * rowBytes, rowBytes)),
                    $"{target} row {row} should be {source} row {sourceRow}");
            }
        }
        // Norm weights are widened to F32 (llama.cpp's CPU ops take no other type there), exactly.
        var norm = weights.Get("model.layers.0.input_layernorm.weight");
        var normInfo = file.Tensors.Single(t => t.Name == "blk.0.attn_norm.weight");
        Assert.Equal(0u, normInfo.Type);
        var widened = new float[norm.ElementCount];
        DTypeConversion.ToFloat32(norm.DType, norm.Bytes, widened);
        Assert.Equal(widened, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.Data(normInfo, widened.Length * 4L)).ToArray());

        var down = weights.Get("model.layers.11.mlp.down_proj.weight");
        Assert.True(down.Bytes.SequenceEqual(file.Data(file.Tensors.Single(t => t.Name == "blk.11.ffn_down.weight"), down.ByteLength)));
    }

    [Fact]
    public void ModelsTheExportCannotWriteAreRefusedByName()
    {
        using var dir = new TestDirectory("gguf-refused");
        string model = dir.CreateSubdirectory("model");
        foreach (string f in Directory.GetFiles(TestModels.DemoDirectory)) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));

        File.Delete(Path.Combine(model, "tokenizer.model"));
        var noTokenizer = Assert.Throws<KangarooException>(() => LlamaGgufExporter.Export(model, dir.Combine("a.gguf")));
        Assert.Contains("tokenizer.model", noTokenizer.Message, StringComparison.Ordinal);

        File.Copy(Path.Combine(TestModels.DemoDirectory, "tokenizer.model"), Path.Combine(model, "tokenizer.model"));
        string configPath = Path.Combine(model, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"model_type\": \"llama\"", "\"model_type\": \"mistral\"", StringComparison.Ordinal));
        var mistral = Assert.Throws<KangarooException>(() => LlamaGgufExporter.Export(model, dir.Combine("b.gguf")));
        Assert.Contains("model_type", mistral.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.Combine("b.gguf")));
    }
}
