using System.Text;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Weights;

public sealed class SafeTensorsFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    // Exactly representable in F16 and BF16, so every dtype must round-trip them bit for bit.
    private static readonly float[] SixValues = [0f, 1f, -2.5f, 0.125f, 1024f, -0.0625f];

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void RoundTrip_PreservesValuesShapesAndDType(DType dtype)
    {
        string path = _temp.File("model.safetensors");
        new SafeTensorsWriter()
            .Add("a.weight", dtype, [2, 3], SixValues)
            .Add("b.bias", dtype, [6], SixValues.Reverse().ToArray())
            .Add("scalar", dtype, [], [7f])
            .WriteTo(path);

        using var file = SafeTensorsFile.Open(path);

        Assert.Equal(["a.weight", "b.bias", "scalar"], file.TensorNames);
        var a = file.Get("a.weight");
        Assert.Equal("a.weight", a.Name);
        Assert.Equal(Path.GetFullPath(path), a.FilePath);
        Assert.Equal(dtype, a.DType);
        Assert.Equal([2, 3], a.Shape);
        Assert.Equal(6 * dtype.SizeInBytes(), a.ByteLength);
        Assert.Equal(SixValues, a.ToFloat32Array());
        Assert.Equal(SixValues.Reverse(), file.Get("b.bias").ToFloat32Array());
        var scalar = file.Get("scalar");
        Assert.Empty(scalar.Shape);
        Assert.Equal([7f], scalar.ToFloat32Array());
        Assert.Empty(file.Metadata);
    }

    [Fact]
    public void Metadata_IsRead()
    {
        string path = _temp.File("m.safetensors");
        new SafeTensorsWriter()
            .AddMetadata("format", "pt")
            .AddMetadata("note", "héllo \"quoted\"")
            .Add("x", DType.F32, [1], [1f])
            .WriteTo(path);

        using var file = SafeTensorsFile.Open(path);

        Assert.Equal(2, file.Metadata.Count);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("héllo \"quoted\"", file.Metadata["note"]);
        Assert.False(file.Contains("__metadata__"));
    }

    [Fact]
    public void Contains_AndGetOfMissingTensor_NamesTensorAndFile()
    {
        string path = _temp.File("c.safetensors");
        new SafeTensorsWriter().Add("present", DType.F32, [1], [1f]).WriteTo(path);
        using var file = SafeTensorsFile.Open(path);

        Assert.True(file.Contains("present"));
        Assert.False(file.Contains("absent"));
        var error = Assert.Throws<ModelFormatException>(() => file.Get("absent"));
        Assert.Contains("c.safetensors", error.Message);
        Assert.Contains("\"absent\"", error.Message);
    }

    [Fact]
    public void EmptyHeaderAndEmptyDataRegion_Work()
    {
        string path = RawSafeTensors.Write(_temp.File("empty.safetensors"), "{}");
        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.TensorNames);
    }

    [Fact]
    public void ZeroElementTensors_WorkAlongsideOthers()
    {
        string path = _temp.File("z.safetensors");
        new SafeTensorsWriter()
            .Add("empty.first", DType.F16, [0, 4], ReadOnlySpan<float>.Empty)
            .Add("x", DType.F32, [2], [1f, 2f])
            .Add("empty.last", DType.BF16, [3, 0], ReadOnlySpan<float>.Empty)
            .WriteTo(path);

        using var file = SafeTensorsFile.Open(path);

        var first = file.Get("empty.first");
        Assert.Equal(0, first.ByteLength);
        Assert.Equal(0, first.ElementCount);
        Assert.Equal([0, 4], first.Shape);
        Assert.True(first.Bytes.IsEmpty);
        Assert.Empty(first.ToFloat32Array());
        Assert.Equal([1f, 2f], file.Get("x").ToFloat32Array());
        Assert.Empty(file.Get("empty.last").ToFloat32Array());
    }

    [Fact]
    public void OnlyZeroElementTensors_EmptyDataRegion_Works()
    {
        string path = _temp.File("z.safetensors");
        new SafeTensorsWriter().Add("nothing", DType.F32, [0], ReadOnlySpan<float>.Empty).WriteTo(path);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(0, file.Get("nothing").ByteLength);
    }

    [Fact]
    public void HeaderWithWhitespaceAroundTheObject_IsAccepted()
    {
        string path = RawSafeTensors.Write(_temp.File("ws.safetensors"),
            " \n{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}    ", dataBytes: 4);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal([0f], file.Get("x").ToFloat32Array());
    }

    [Fact]
    public void ConcurrentReads_SeeTheSameValues()
    {
        string path = _temp.File("p.safetensors");
        var writer = new SafeTensorsWriter();
        for (int t = 0; t < 16; t++)
            writer.Add($"t{t}", DType.F32, [64], Enumerable.Range(0, 64).Select(i => (float)(t * 1000 + i)).ToArray());
        writer.WriteTo(path);
        using var file = SafeTensorsFile.Open(path);

        Parallel.For(0, 1000, i =>
        {
            int t = i % 16;
            float[] values = file.Get($"t{t}").ToFloat32Array();
            Assert.Equal(t * 1000 + 63, values[63]);
        });
    }

    [Fact]
    public void Dispose_ReleasesTheFile_AndLaterGetThrows()
    {
        string path = _temp.File("d.safetensors");
        new SafeTensorsWriter().Add("x", DType.F32, [1], [1f]).WriteTo(path);
        var file = SafeTensorsFile.Open(path);
        if (OperatingSystem.IsLinux()) Assert.True(RawSafeTensors.OpenReferences(path) > 0);

        file.Dispose();
        file.Dispose(); // idempotent

        Assert.Throws<ObjectDisposedException>(() => file.Get("x"));
        if (OperatingSystem.IsLinux()) Assert.Equal(0, RawSafeTensors.OpenReferences(path));
        File.Delete(path);
    }

    /// <summary>
    /// A sparse file just over 2 GiB: the data region and the offsets of the last tensor are past int.MaxValue,
    /// so any 32-bit offset arithmetic would read the wrong bytes or throw.
    /// </summary>
    [Fact]
    public unsafe void FilesOver2GiB_Work()
    {
        const long bigElements = (1L << 29) + 16; // 2 GiB + 64 bytes of F32
        const long bigBytes = bigElements * 4;
        string header = $$$"""{"big":{"dtype":"F32","shape":[{{{bigElements}}}],"data_offsets":[0,{{{bigBytes}}}]},"tail":{"dtype":"F32","shape":[2],"data_offsets":[{{{bigBytes}}},{{{bigBytes + 8}}}]}}""";
        byte[] headerBytes = Encoding.UTF8.GetBytes(header);
        string path = _temp.File("big.safetensors");
        RawSafeTensors.Write(path, (ulong)headerBytes.Length, headerBytes);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            long dataStart = 8 + headerBytes.Length;
            stream.SetLength(dataStart + bigBytes + 8); // sparse: no disk blocks for the zeros
            stream.Position = dataStart + bigBytes;
            stream.Write(BitConverter.GetBytes(3.5f));
            stream.Write(BitConverter.GetBytes(-7f));
        }

        using var file = SafeTensorsFile.Open(path);

        var big = file.Get("big");
        Assert.Equal(bigBytes, big.ByteLength);
        Assert.Equal(bigElements, big.ElementCount);
        Assert.Equal(0f, *(float*)(big.Pointer + bigBytes - 4));
        var tail = file.Get("tail");
        Assert.Equal([3.5f, -7f], tail.ToFloat32Array());
        Assert.True(tail.Pointer - big.Pointer == bigBytes);
    }

    // ---- Bad inputs: one test each, asserting the type and the key parts of the message. ----

    private ModelFormatException OpenFails(string path, params string[] expectedInMessage)
    {
        var error = Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Equal(Path.GetFullPath(path), error.Path);
        Assert.Contains(Path.GetFileName(path), error.Message);
        foreach (string part in expectedInMessage) Assert.Contains(part, error.Message);
        return error;
    }

    private ModelFormatException HeaderFails(string headerJson, long dataBytes, params string[] expectedInMessage) =>
        OpenFails(RawSafeTensors.Write(_temp.File("bad.safetensors"), headerJson, dataBytes), expectedInMessage);

    [Fact]
    public void MissingFile() => OpenFails(_temp.File("nope.safetensors"), "not found");

    [Fact]
    public void Directory_InsteadOfFile()
    {
        Directory.CreateDirectory(_temp.File("dir.safetensors"));
        OpenFails(_temp.File("dir.safetensors"), "directory");
    }

    [Fact]
    public void UnreadableFile()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "uses Unix permissions");
        Assert.SkipWhen(Environment.UserName == "root", "root reads files whatever their permissions");
        string path = _temp.File("locked.safetensors");
        new SafeTensorsWriter().Add("x", DType.F32, [1], [1f]).WriteTo(path);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.None);
        OpenFails(path, "cannot read");
    }

    [Fact]
    public void ShorterThan8Bytes()
    {
        string path = _temp.File("short.safetensors");
        File.WriteAllBytes(path, new byte[7]);
        OpenFails(path, "7 bytes", "too short");
    }

    [Fact]
    public void EmptyFile_IsRefusedBeforeItIsOpened()
    {
        string path = _temp.File("empty.safetensors");
        File.WriteAllBytes(path, []);
        OpenFails(path, "is empty (0 bytes) or not a regular file", "a .safetensors file");
    }

    [Fact]
    public void HeaderLengthPastEndOfFile()
    {
        string path = RawSafeTensors.Write(_temp.File("trunc.safetensors"), declaredHeaderLength: 1000, "{}"u8);
        OpenFails(path, "1000", "past the end of the file", "10 bytes");
    }

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(ulong.MaxValue)]
    public void HeaderLengthOverTheLimit_RefusedBeforeAllocating(ulong declared)
    {
        string path = RawSafeTensors.Write(_temp.File("huge.safetensors"), declared, "{}"u8);
        OpenFails(path, declared.ToString(), "100000000");
    }

    [Fact]
    public void HeaderNotUtf8()
    {
        byte[] header = [(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}'];
        OpenFails(RawSafeTensors.Write(_temp.File("utf.safetensors"), (ulong)header.Length, header), "UTF-8");
    }

    [Theory]
    [InlineData("{\"x\": ")]
    [InlineData("not json")]
    [InlineData("")]
    [InlineData("{} {}")]
    [InlineData("{\"a\" 1}")]
    public void HeaderNotJson(string header) => HeaderFails(header, 0, "JSON");

    [Theory]
    [InlineData("[]", "an array")]
    [InlineData("42", "the number 42")]
    [InlineData("\"text\"", "the string")]
    public void HeaderNotAnObject(string header, string found) => HeaderFails(header, 0, "must be a JSON object", found);

    [Theory]
    [InlineData("[]", "an array")]
    [InlineData("\"F32\"", "the string \"F32\"")]
    [InlineData("null", "null")]
    public void EntryNotAnObject(string entry, string found) => HeaderFails($$"""{"w": {{entry}}}""", 0, "\"w\"", "must be a JSON object", found);

    [Theory]
    [InlineData("""{"shape":[1],"data_offsets":[0,4]}""", "missing \"dtype\"")]
    [InlineData("""{"dtype":"F32","data_offsets":[0,4]}""", "missing \"shape\"")]
    [InlineData("""{"dtype":"F32","shape":[1]}""", "missing \"data_offsets\"")]
    public void EntryMissingAKey(string entry, string problem) => HeaderFails($$"""{"layer.w": {{entry}}}""", 4, "\"layer.w\"", problem);

    [Theory]
    [InlineData("""{"dtype":32,"shape":[1],"data_offsets":[0,4]}""", "\"dtype\" must be a string", "the number 32")]
    [InlineData("""{"dtype":"F32","shape":"1","data_offsets":[0,4]}""", "\"shape\" must be an array", "the string \"1\"")]
    [InlineData("""{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}""", "dimension 0 must be an integer", "1.5")]
    [InlineData("""{"dtype":"F32","shape":[2,"2"],"data_offsets":[0,4]}""", "dimension 1 must be an integer", "the string \"2\"")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":{"begin":0}}""", "\"data_offsets\" must be [begin, end]", "an object")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}""", "\"data_offsets\" must be [begin, end]", "the string \"4\"")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[4]}""", "\"data_offsets\" must be [begin, end]", "found 1 number")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}""", "\"data_offsets\" must be [begin, end]", "more than 2")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}""", "\"data_offsets\" must be [begin, end]", "-4")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}""", "unexpected key \"extra\"")]
    [InlineData("""{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}""", "\"dtype\" appears twice")]
    public void EntryWithWrongJsonTypes(string entry, string problem, string found = "") =>
        HeaderFails($$"""{"w": {{entry}}}""", 4, "\"w\"", problem, found);

    [Fact]
    public void MetadataWithNonStringValue() =>
        HeaderFails("""{"__metadata__": {"format": 1}}""", 0, "\"__metadata__\".\"format\" must be a string", "the number 1");

    [Fact]
    public void NegativeDimension() =>
        HeaderFails("""{"w": {"dtype":"F32","shape":[4,-2],"data_offsets":[0,0]}}""", 0, "\"w\"", "dimension 1 is -2", "non-negative");

    [Fact]
    public void DimensionOverIntMax() =>
        HeaderFails("""{"w": {"dtype":"F32","shape":[3000000000],"data_offsets":[0,0]}}""", 0, "\"w\"", "3000000000");

    [Theory]
    [InlineData("I64")]
    [InlineData("F64")]
    [InlineData("f32")]
    public void UnknownDType(string dtype) =>
        HeaderFails($$$"""{"w": {"dtype":"{{{dtype}}}","shape":[1],"data_offsets":[0,8]}}""", 8, "\"w\"", $"unsupported dtype \"{dtype}\"", "F32, F16, BF16");

    [Fact]
    public void OffsetsBeginAfterEnd() =>
        HeaderFails("""{"w": {"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8, "\"w\"", "[8, 4]", "begin after they end");

    [Fact]
    public void OffsetsPastTheDataRegion() =>
        HeaderFails("""{"w": {"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 12, "\"w\"", "[0, 16]", "12 bytes");

    [Fact]
    public void ByteLengthNotShapeTimesDTypeSize() =>
        HeaderFails("""{"w": {"dtype":"F16","shape":[2,3],"data_offsets":[0,16]}}""", 16, "\"w\"", "[2, 3]", "F16", "needs 12 bytes", "hold 16");

    [Fact]
    public void ShapeWhoseByteLengthOverflows() =>
        HeaderFails("""{"w": {"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}""", 4, "\"w\"", "more than 2^63", "hold 4");

    [Fact]
    public void OverlappingTensors() =>
        HeaderFails("""
            {"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]},
             "b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}}
            """, 12, "\"b\"", "overlap", "\"a\"", "[4, 12]");

    [Fact]
    public void ZeroLengthTensorInsideAnother_IsAnOverlap() =>
        HeaderFails("""
            {"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]},
             "z": {"dtype":"F32","shape":[0],"data_offsets":[4,4]}}
            """, 8, "\"z\"", "overlap", "\"a\"");

    [Fact]
    public void HoleBetweenTensors() =>
        HeaderFails("""
            {"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]},
             "b": {"dtype":"F32","shape":[1],"data_offsets":[8,12]}}
            """, 12, "\"b\"", "[4, 8)", "after tensor \"a\"", "entirely indexed");

    [Fact]
    public void HoleAtTheStart() =>
        HeaderFails("""{"a": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "\"a\"", "[0, 4)", "entirely indexed");

    [Fact]
    public void TrailingBytesAfterTheLastTensor() =>
        HeaderFails("""{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 10, "[4, 10)", "10-byte data region", "entirely indexed");

    [Fact]
    public void DuplicateTensorNames() =>
        HeaderFails("""
            {"w": {"dtype":"F32","shape":[1],"data_offsets":[0,4]},
             "w": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}}
            """, 8, "\"w\"", "appears twice");

    [Fact]
    public void FailedOpen_ReleasesTheFile_SoItCanBeOverwrittenAndDeleted()
    {
        string path = _temp.File("retry.safetensors");
        // Fails late: after mapping and parsing, at the coverage check.
        RawSafeTensors.Write(path, """{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", dataBytes: 8);
        Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path));
        if (OperatingSystem.IsLinux()) Assert.Equal(0, RawSafeTensors.OpenReferences(path));

        new SafeTensorsWriter().Add("a", DType.F32, [1], [5f]).WriteTo(path); // FileShare.None: fails if still open on Windows
        using (var file = SafeTensorsFile.Open(path))
            Assert.Equal([5f], file.Get("a").ToFloat32Array());

        File.Delete(path);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void FailedOpen_OfShortFile_ReleasesTheFile()
    {
        string path = _temp.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path));
        if (OperatingSystem.IsLinux()) Assert.Equal(0, RawSafeTensors.OpenReferences(path));
        File.Delete(path);
    }
}
