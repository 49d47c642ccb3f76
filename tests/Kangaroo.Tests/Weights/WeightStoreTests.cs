using System.Text.Json;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Weights;

public sealed class WeightStoreTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static float[] Range(int count, float start = 0) => Enumerable.Range(0, count).Select(i => start + i).ToArray();

    private void WriteIndex(params (string Tensor, string Shard)[] weightMap)
    {
        var index = new
        {
            metadata = new { total_size = 123 },
            weight_map = weightMap.ToDictionary(entry => entry.Tensor, entry => entry.Shard),
        };
        File.WriteAllText(_temp.File(WeightStore.IndexFileName), JsonSerializer.Serialize(index));
    }

    /// <summary>Two shards: embed + layer 0 in the first, layer 1 + norm in the second.</summary>
    private void WriteTwoShards()
    {
        new SafeTensorsWriter()
            .Add("model.embed_tokens.weight", DType.BF16, [4, 2], Range(8))
            .Add("model.layers.0.mlp.up_proj.weight", DType.F16, [3, 2], Range(6, 10))
            .WriteTo(_temp.File("model-00001-of-00002.safetensors"));
        new SafeTensorsWriter()
            .Add("model.layers.1.mlp.up_proj.weight", DType.F16, [3, 2], Range(6, 20))
            .Add("model.norm.weight", DType.F32, [2], [0.5f, 2f])
            .WriteTo(_temp.File("model-00002-of-00002.safetensors"));
    }

    private static readonly (string, string)[] TwoShardMap =
    [
        ("model.embed_tokens.weight", "model-00001-of-00002.safetensors"),
        ("model.layers.0.mlp.up_proj.weight", "model-00001-of-00002.safetensors"),
        ("model.layers.1.mlp.up_proj.weight", "model-00002-of-00002.safetensors"),
        ("model.norm.weight", "model-00002-of-00002.safetensors"),
    ];

    private ModelFormatException OpenFails(params string[] expectedInMessage)
    {
        var error = Assert.Throws<ModelFormatException>(() => WeightStore.OpenDirectory(_temp.Path));
        foreach (string part in expectedInMessage) Assert.Contains(part, error.Message);
        return error;
    }

    [Fact]
    public void SingleFileDirectory_RoundTrip()
    {
        new SafeTensorsWriter()
            .Add("model.norm.weight", DType.F32, [3], [1f, 2f, 3f])
            .Add("lm_head.weight", DType.BF16, [2, 3], Range(6))
            .WriteTo(_temp.File(WeightStore.SingleFileName));

        using var store = WeightStore.OpenDirectory(_temp.Path);

        Assert.Equal([Path.GetFullPath(_temp.File(WeightStore.SingleFileName))], store.Files);
        Assert.Equal(["model.norm.weight", "lm_head.weight"], store.TensorNames);
        Assert.True(store.Contains("lm_head.weight"));
        Assert.Equal([1f, 2f, 3f], store.Get("model.norm.weight").ToFloat32Array());
        var head = store.Get("lm_head.weight", 2, 3);
        Assert.Equal(DType.BF16, head.DType);
        Assert.Equal(Range(6), head.ToFloat32Array());
    }

    [Fact]
    public void OpenFile_OpensExactlyThatFile()
    {
        string path = _temp.File("adapter.safetensors");
        new SafeTensorsWriter().Add("x", DType.F16, [2], [1f, -1f]).WriteTo(path);

        using var store = WeightStore.OpenFile(path);

        Assert.Equal([Path.GetFullPath(path)], store.Files);
        Assert.Equal([1f, -1f], store.Get("x").ToFloat32Array());
        var error = Assert.Throws<ModelFormatException>(() => store.Get("y"));
        Assert.Contains("adapter.safetensors", error.Message);
    }

    [Fact]
    public void ShardedIndex_RoundTrip()
    {
        WriteTwoShards();
        WriteIndex(TwoShardMap);
        // A stray single-file checkpoint must be ignored when the index is present.
        new SafeTensorsWriter().Add("stale", DType.F32, [1], [0f]).WriteTo(_temp.File(WeightStore.SingleFileName));

        using var store = WeightStore.OpenDirectory(_temp.Path);

        Assert.Equal(2, store.Files.Count);
        Assert.EndsWith("model-00001-of-00002.safetensors", store.Files[0]);
        Assert.EndsWith("model-00002-of-00002.safetensors", store.Files[1]);
        Assert.Equal(TwoShardMap.Select(entry => entry.Item1), store.TensorNames);
        Assert.False(store.Contains("stale"));
        Assert.Equal(Range(8), store.Get("model.embed_tokens.weight", 4, 2).ToFloat32Array());
        Assert.Equal(Range(6, 10), store.Get("model.layers.0.mlp.up_proj.weight").ToFloat32Array());
        var layer1 = store.Get("model.layers.1.mlp.up_proj.weight", 3, 2);
        Assert.Equal(Range(6, 20), layer1.ToFloat32Array());
        Assert.EndsWith("model-00002-of-00002.safetensors", layer1.FilePath);
        Assert.Equal([0.5f, 2f], store.Get("model.norm.weight").ToFloat32Array());
    }

    [Fact]
    public void ConcurrentReadsAcrossShards()
    {
        WriteTwoShards();
        WriteIndex(TwoShardMap);
        using var store = WeightStore.OpenDirectory(_temp.Path);

        Parallel.For(0, 1000, i =>
        {
            Assert.Equal(Range(6, 20), store.Get("model.layers.1.mlp.up_proj.weight").ToFloat32Array());
            Assert.Equal(Range(8), store.Get("model.embed_tokens.weight").ToFloat32Array());
        });
    }

    [Fact]
    public void Dispose_ReleasesEveryShard()
    {
        WriteTwoShards();
        WriteIndex(TwoShardMap);
        var store = WeightStore.OpenDirectory(_temp.Path);
        store.Dispose();

        Assert.Throws<ObjectDisposedException>(() => store.Get("model.norm.weight"));
        foreach (string file in store.Files)
        {
            if (OperatingSystem.IsLinux()) Assert.Equal(0, RawSafeTensors.OpenReferences(file));
            File.Delete(file);
        }
    }

    [Fact]
    public void NoWeights_NamesTheDirectoryAndBothFileNames()
    {
        var error = OpenFails(WeightStore.IndexFileName, WeightStore.SingleFileName);
        Assert.Equal(Path.GetFullPath(_temp.Path), error.Path);
        Assert.Contains(_temp.Path, error.Message);
    }

    [Fact]
    public void MissingDirectory()
    {
        string missing = _temp.File("no-such-model");
        var error = Assert.Throws<ModelFormatException>(() => WeightStore.OpenDirectory(missing));
        Assert.Contains("no-such-model", error.Message);
        Assert.Contains("not found", error.Message);
    }

    [Fact]
    public void IndexNamesAMissingShard()
    {
        WriteTwoShards();
        File.Delete(_temp.File("model-00002-of-00002.safetensors"));
        WriteIndex(TwoShardMap);
        OpenFails(WeightStore.IndexFileName, "\"model-00002-of-00002.safetensors\"", "does not exist", "model.layers.1.mlp.up_proj.weight");
    }

    [Fact]
    public void IndexedTensorNotInTheShardItNames()
    {
        WriteTwoShards();
        WriteIndex([.. TwoShardMap, ("model.layers.2.mlp.up_proj.weight", "model-00002-of-00002.safetensors")]);
        OpenFails("\"model.layers.2.mlp.up_proj.weight\"", "\"model-00002-of-00002.safetensors\"", "does not contain it", "no shard holds it");
    }

    [Fact]
    public void IndexedTensorInAnotherShard()
    {
        WriteTwoShards();
        var map = TwoShardMap.ToArray();
        map[3] = ("model.norm.weight", "model-00001-of-00002.safetensors");
        WriteIndex(map);
        OpenFails("\"model.norm.weight\"", "places it in shard \"model-00001-of-00002.safetensors\"", "it is in \"model-00002-of-00002.safetensors\"");
    }

    /// <summary>Chosen behaviour: tensors in a shard but missing from the index are an error, not ignored.</summary>
    [Fact]
    public void TensorInShardButNotInIndex()
    {
        WriteTwoShards();
        WriteIndex(TwoShardMap[..3]);
        OpenFails("\"model.norm.weight\"", "model-00002-of-00002.safetensors", "not in the index");
    }

    [Fact]
    public void SameTensorInTwoShards()
    {
        WriteTwoShards();
        new SafeTensorsWriter()
            .Add("model.norm.weight", DType.F32, [2], [0.5f, 2f])
            .WriteTo(_temp.File("extra.safetensors"));
        WriteIndex([.. TwoShardMap, ("other", "extra.safetensors")]);
        OpenFails("\"model.norm.weight\"", "two shards", "model-00002-of-00002.safetensors", "extra.safetensors");
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("[]", "must be a JSON object")]
    [InlineData("""{"metadata": {}}""", "no \"weight_map\"")]
    [InlineData("""{"weight_map": []}""", "\"weight_map\" must be an object")]
    [InlineData("""{"weight_map": {"w": 3}}""", "tensor \"w\"", "shard file name string")]
    [InlineData("""{"weight_map": {"w": "a.safetensors", "w": "b.safetensors"}}""", "tensor \"w\" appears twice", "a.safetensors", "b.safetensors")]
    [InlineData("""{"weight_map": {"w": "../elsewhere.safetensors"}}""", "tensor \"w\"", "not a plain file name")]
    public void MalformedIndex(string json, string problem, string detail1 = "", string detail2 = "")
    {
        File.WriteAllText(_temp.File(WeightStore.IndexFileName), json);
        OpenFails(WeightStore.IndexFileName, problem, detail1, detail2);
    }

    [Fact]
    public void BadShard_ReportsTheShardFile_AndReleasesTheShardsOpenedBeforeIt()
    {
        WriteTwoShards();
        File.WriteAllBytes(_temp.File("model-00002-of-00002.safetensors"), [1, 2, 3]);
        WriteIndex(TwoShardMap);

        OpenFails("model-00002-of-00002.safetensors", "too short");

        string firstShard = _temp.File("model-00001-of-00002.safetensors");
        if (OperatingSystem.IsLinux()) Assert.Equal(0, RawSafeTensors.OpenReferences(firstShard));
        File.Delete(firstShard);
    }

    [Fact]
    public void FailedConsistencyCheck_ReleasesEveryShard()
    {
        WriteTwoShards();
        WriteIndex(TwoShardMap[..3]);
        OpenFails("not in the index");
        foreach (string shard in new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" })
        {
            if (OperatingSystem.IsLinux()) Assert.Equal(0, RawSafeTensors.OpenReferences(_temp.File(shard)));
            new SafeTensorsWriter().Add("x", DType.F32, [1], [1f]).WriteTo(_temp.File(shard)); // overwrite
        }
    }

    [Fact]
    public void Get_MissingTensor_NamesTensorAndIndex_AndSuggestsCloseNames()
    {
        WriteTwoShards();
        WriteIndex(TwoShardMap);
        using var store = WeightStore.OpenDirectory(_temp.Path);

        var error = Assert.Throws<ModelFormatException>(() => store.Get("model.layers.0.mlp.up_proj.weights"));

        // The index lists the sharded tensors, so it is the file that lacks this one.
        Assert.Equal(Path.Combine(Path.GetFullPath(_temp.Path), WeightStore.IndexFileName), error.Path);
        Assert.Contains("\"model.layers.0.mlp.up_proj.weights\"", error.Message);
        Assert.Contains("did you mean \"model.layers.0.mlp.up_proj.weight\"", error.Message);
    }

    [Fact]
    public void Get_MissingTensor_WithNothingClose_HasNoSuggestion()
    {
        WriteTwoShards();
        WriteIndex(TwoShardMap);
        using var store = WeightStore.OpenDirectory(_temp.Path);

        var error = Assert.Throws<ModelFormatException>(() => store.Get("completely.different"));

        Assert.Contains("\"completely.different\"", error.Message);
        Assert.DoesNotContain("did you mean", error.Message);
    }

    [Fact]
    public void Get_WithWrongShape_NamesTensorExpectedAndActualShapes()
    {
        new SafeTensorsWriter()
            .Add("model.layers.3.mlp.up_proj.weight", DType.F32, [64, 32], new float[64 * 32])
            .WriteTo(_temp.File(WeightStore.SingleFileName));
        using var store = WeightStore.OpenDirectory(_temp.Path);

        var error = Assert.Throws<ModelFormatException>(() => store.Get("model.layers.3.mlp.up_proj.weight", 96, 32));

        Assert.Contains("model.layers.3.mlp.up_proj.weight has shape [64, 32], expected [96, 32]", error.Message);
        Assert.Contains(WeightStore.SingleFileName, error.Message);
        Assert.Throws<ModelFormatException>(() => store.Get("model.layers.3.mlp.up_proj.weight", 64, 32, 1));
        Assert.Throws<ModelFormatException>(() => store.Get("model.layers.3.mlp.up_proj.weight", 64));
        Assert.Equal(64 * 32, store.Get("model.layers.3.mlp.up_proj.weight", 64, 32).ElementCount);
    }

    [Theory]
    [InlineData("model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight", 0)]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("", "abc", 3)]
    [InlineData("abc", "", 3)]
    public void EditDistance(string a, string b, int expected) => Assert.Equal(expected, NameSuggestions.EditDistance(a, b));
}
