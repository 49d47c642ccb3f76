using System.IO.Compression;
using System.Text.Json;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Weights;

public class PyTorchCheckpointTests
{
    private static readonly string FixtureDir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "pytorch");

    private static string Fixture(string dir) => Path.Combine(FixtureDir, dir, "pytorch_model.bin");

    public static TheoryData<string> AllFixtures => ["adapter_f16", "adapter_f32", "adapter_bf16", "views", "views_rezipped"];

    [Theory]
    [MemberData(nameof(AllFixtures))]
    public void NamesDTypesShapesAndBytesMatchWhatTorchLoadSaw(string dir)
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, dir, "expected.json")));
        var tensors = expected.RootElement.GetProperty("tensors").EnumerateArray().ToList();
        using var checkpoint = PyTorchCheckpoint.Open(Fixture(dir));

        Assert.Equal(tensors.Select(t => t.GetProperty("name").GetString()), checkpoint.TensorNames);
        foreach (var t in tensors)
        {
            string name = t.GetProperty("name").GetString()!;
            int[] shape = t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray();
            Assert.True(checkpoint.Contains(name));
            if (t.TryGetProperty("non_contiguous", out _) || t.TryGetProperty("unsupported", out _))
            {
                Assert.Throws<ModelFormatException>(() => checkpoint.Get(name));
                continue;
            }

            var view = checkpoint.Get(name, shape);
            Assert.Equal(name, view.Name);
            Assert.Equal(Fixture(dir), view.FilePath);
            Assert.Equal(Enum.Parse<DType>(t.GetProperty("dtype").GetString()!), view.DType);
            Assert.Equal(shape, view.Shape);
            Assert.Equal(Convert.FromBase64String(t.GetProperty("data_base64").GetString()!), view.Bytes.ToArray());
            if (t.TryGetProperty("values", out var values))
                Assert.Equal(values.EnumerateArray().Select(v => v.GetSingle()), view.ToFloat32Array());
        }
    }

    [Fact]
    public void AdapterHasTheOfficialKangarooLayout()
    {
        using var checkpoint = PyTorchCheckpoint.Open(Fixture("adapter_f16"));
        Assert.Equal(
        [
            "layers.0.input_layernorm.weight",
            "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.k_proj.weight",
            "layers.0.self_attn.v_proj.weight", "layers.0.self_attn.o_proj.weight",
            "norm.weight",
        ], checkpoint.TensorNames);
        Assert.Equal(DType.F16, checkpoint.Get("layers.0.self_attn.q_proj.weight", 32, 32).DType);
        Assert.Equal(32, checkpoint.Get("norm.weight", 32).ElementCount);
        Assert.True(File.Exists(Path.Combine(FixtureDir, "adapter_f16", "config.json")));
    }

    [Fact]
    public unsafe void ViewsIntoASharedStorageAreAtTheirOffsets()
    {
        using var checkpoint = PyTorchCheckpoint.Open(Fixture("views"));
        var whole = checkpoint.Get("whole", 8, 4);
        Assert.True(whole.Pointer + 2 * 4 * sizeof(float) == checkpoint.Get("rows_2_4", 2, 4).Pointer);
        Assert.True(whole.Pointer + 5 * 4 * sizeof(float) == checkpoint.Get("row_5", 4).Pointer);
        var scalar = checkpoint.Get("scalar");
        Assert.Empty(scalar.Shape);
        Assert.Equal(whole.ToFloat32Array()[31], scalar.ToFloat32Array()[0]);
        // torch.save aligns storages to 64 bytes in the file; a page-aligned mapping keeps that.
        Assert.Equal(0, (long)whole.Pointer % 64);
    }

    [Fact]
    public void NonContiguousTensorIsListedButRefused()
    {
        using var checkpoint = PyTorchCheckpoint.Open(Fixture("views"));
        Assert.Contains("transposed", checkpoint.TensorNames);
        var e = Assert.Throws<ModelFormatException>(() => checkpoint.Get("transposed"));
        Assert.Contains(Fixture("views"), e.Message);
        Assert.Contains("'transposed'", e.Message);
        Assert.Contains("not contiguous", e.Message);
        Assert.Contains("stride [1, 4]", e.Message);
    }

    [Fact]
    public void UnsupportedDTypeIsListedButRefused()
    {
        using var checkpoint = PyTorchCheckpoint.Open(Fixture("views"));
        var e = Assert.Throws<ModelFormatException>(() => checkpoint.Get("step"));
        Assert.Contains("'step'", e.Message);
        Assert.Contains("int64", e.Message);
        Assert.Contains("not supported", e.Message);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        using var checkpoint = PyTorchCheckpoint.Open(Fixture("adapter_f16"));
        Assert.False(checkpoint.Contains("lm_head.weight"));
        var e = Assert.Throws<ModelFormatException>(() => checkpoint.Get("lm_head.weight"));
        Assert.Equal(Fixture("adapter_f16"), e.Path);
        Assert.Contains("'lm_head.weight' not found", e.Message);
    }

    [Fact]
    public void WrongShapeNamesTensorExpectedAndActual()
    {
        using var checkpoint = PyTorchCheckpoint.Open(Fixture("adapter_f16"));
        var e = Assert.Throws<ModelFormatException>(() => checkpoint.Get("layers.0.self_attn.k_proj.weight", 8, 32));
        Assert.Contains(Fixture("adapter_f16"), e.Message);
        Assert.Contains("'layers.0.self_attn.k_proj.weight' has shape [32, 32], expected [8, 32]", e.Message);
    }

    [Fact]
    public void MissingFile()
    {
        string path = Path.Combine(FixtureDir, "no_such_dir", "pytorch_model.bin");
        var e = Assert.Throws<ModelFormatException>(() => PyTorchCheckpoint.Open(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void LegacyFormatIsRefusedWithAdvice()
    {
        var e = Assert.Throws<ModelFormatException>(() => PyTorchCheckpoint.Open(Fixture("legacy")));
        Assert.Contains(Fixture("legacy"), e.Message);
        Assert.Contains("legacy", e.Message);
        Assert.Contains("torch.save(torch.load(path), path)", e.Message);
    }

    [Fact]
    public void GarbageEmptyAndTruncatedFilesAreRefused()
    {
        using var temp = new TempDir();
        string garbage = temp.Write("garbage.bin", "this is not a checkpoint at all"u8.ToArray());
        Assert.Contains("not a PyTorch checkpoint", AssertRefused(garbage));

        string empty = temp.Write("empty.bin", []);
        Assert.Contains("empty", AssertRefused(empty));

        byte[] whole = File.ReadAllBytes(Fixture("adapter_f16"));
        string truncated = temp.Write("truncated.bin", whole[..(whole.Length / 2)]);
        Assert.Contains("end of central directory not found", AssertRefused(truncated));

        // Cut just before the end record: the central directory then points past the end of the file.
        string cut = temp.Write("cut.bin", [.. whole[..^120], .. whole[^22..]]);
        AssertRefused(cut);
    }

    [Fact]
    public void CorruptionNeverLeaksAnotherException()
    {
        using var temp = new TempDir();
        byte[] whole = File.ReadAllBytes(Fixture("views"));
        string path = temp.NewPath("pytorch_model.bin");
        for (int i = 0; i < 2 * whole.Length; i++)
        {
            // First every truncation, then every single byte flipped.
            byte[] bytes = i < whole.Length ? whole[..i] : (byte[])whole.Clone();
            if (i >= whole.Length)
                bytes[i - whole.Length] ^= 0xFF;
            File.WriteAllBytes(path, bytes);
            try
            {
                using var checkpoint = PyTorchCheckpoint.Open(path);
                foreach (string name in checkpoint.TensorNames)
                {
                    try { checkpoint.Get(name).ToFloat32Array(); }
                    catch (ModelFormatException) { }
                }
            }
            catch (ModelFormatException e)
            {
                Assert.Equal(path, e.Path);
            }
        }
    }

    [Fact]
    public void BigEndianByteOrderIsRefused()
    {
        using var temp = new TempDir();
        string path = Rezip(temp, (name, data) => data, ("my_checkpoint/byteorder", "big"u8.ToArray()));
        Assert.Contains("big-endian", AssertRefused(path));

        string little = Rezip(temp, (name, data) => data, ("my_checkpoint/byteorder", "little"u8.ToArray()));
        using var ok = PyTorchCheckpoint.Open(little);
        Assert.Equal(7, ok.TensorNames.Count);
    }

    [Fact]
    public void MissingStorageEntryIsRefused()
    {
        using var temp = new TempDir();
        string path = Rezip(temp, (name, data) => name.EndsWith("/data/1") ? null : data);
        string message = AssertRefused(path);
        Assert.Contains("'own'", message);
        Assert.Contains("'my_checkpoint/data/1' is missing", message);
    }

    [Fact]
    public void StorageTooSmallIsRefused()
    {
        using var temp = new TempDir();
        string path = Rezip(temp, (name, data) => name.EndsWith("/data/0") ? data[..64] : data);
        string message = AssertRefused(path);
        Assert.Contains("holds 64 bytes", message);
    }

    [Fact]
    public void NoDataPklCorruptPickleAndNonStateDictAreRefused()
    {
        using var temp = new TempDir();
        string noPickle = Rezip(temp, (name, data) => name.EndsWith("data.pkl") ? null : data);
        Assert.Contains("no data.pkl", AssertRefused(noPickle));

        string corrupt = Rezip(temp, (name, data) => name.EndsWith("data.pkl") ? data[..100] : data);
        Assert.Contains("cannot unpickle my_checkpoint/data.pkl", AssertRefused(corrupt));

        // Protocol 2: PROTO 2, EMPTY_LIST, STOP — a pickled empty list.
        string list = Rezip(temp, (name, data) => name.EndsWith("data.pkl") ? [0x80, 0x02, (byte)']', (byte)'.'] : data);
        Assert.Contains("not a state dict", AssertRefused(list));
    }

    [Fact]
    public void DeflatedPickleIsReadButDeflatedStorageIsRefused()
    {
        using var temp = new TempDir();
        string pickleDeflated = Rezip(temp, (name, data) => data, compress: name => name.EndsWith("data.pkl"));
        using (var checkpoint = PyTorchCheckpoint.Open(pickleDeflated))
            Assert.Equal(8 * 4, checkpoint.Get("whole").ElementCount);

        string storageDeflated = Rezip(temp, (name, data) => data, compress: name => name.EndsWith("/data/0"));
        Assert.Contains("is compressed", AssertRefused(storageDeflated));
    }

    [Fact]
    public void DisposeReleasesTheFile()
    {
        using var temp = new TempDir();
        string path = temp.Write("pytorch_model.bin", File.ReadAllBytes(Fixture("adapter_f16")));
        var checkpoint = PyTorchCheckpoint.Open(path);
        Assert.Equal(32, checkpoint.Get("norm.weight").ElementCount);
        checkpoint.Dispose();
        checkpoint.Dispose(); // idempotent

        // An exclusive open fails while the mapping holds a shared lock (.NET emulates FileShare on Unix too).
        using (new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) { }
        File.Delete(path);
        Assert.False(File.Exists(path));
        Assert.Throws<ObjectDisposedException>(() => checkpoint.Get("norm.weight"));
    }

    private static string AssertRefused(string path)
    {
        var e = Assert.Throws<ModelFormatException>(() => PyTorchCheckpoint.Open(path));
        Assert.Equal(path, e.Path);
        Assert.StartsWith(path + ": ", e.Message);
        return e.Message;
    }

    /// <summary>
    /// Copies the views_rezipped fixture (prefix "my_checkpoint/") through <paramref name="transform"/> (null drops an
    /// entry), stored unless <paramref name="compress"/> says otherwise, plus an optional extra entry.
    /// </summary>
    private static string Rezip(TempDir temp, Func<string, byte[], byte[]?> transform, (string Name, byte[] Data)? extra = null,
        Func<string, bool>? compress = null)
    {
        string path = temp.NewPath("pytorch_model.bin");
        using (var source = ZipFile.OpenRead(Fixture("views_rezipped")))
        using (var target = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            var items = source.Entries.Select(e => (e.FullName, Data: ReadAll(e))).ToList();
            if (extra is { } x)
                items.Add(x);
            foreach (var (name, data) in items)
            {
                var changed = transform(name, data);
                if (changed is null)
                    continue;
                var level = compress?.Invoke(name) == true ? CompressionLevel.Optimal : CompressionLevel.NoCompression;
                using var stream = target.CreateEntry(name, level).Open();
                stream.Write(changed);
            }
        }
        return path;
    }

    private static byte[] ReadAll(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    private sealed class TempDir : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("kangaroo-pytorch-").FullName;
        private int _counter;

        public string NewPath(string name) => Path.Combine(_dir, $"{_counter++}-{name}");

        public string Write(string name, byte[] data)
        {
            string path = NewPath(name);
            File.WriteAllBytes(path, data);
            return path;
        }

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }
}
