using System.Text.Json;
using System.Text.Unicode;

namespace Kangaroo.Weights;

/// <summary>
/// The parsed and validated JSON header of a safetensors file. Parsing streams over the mapped bytes with
/// <see cref="Utf8JsonReader"/>, so the header is never copied; only names, shapes and metadata are allocated.
/// </summary>
internal sealed class SafeTensorsHeader
{
    private const string MetadataKey = "__metadata__";
    private const string SupportedDTypes = "F32, F16, BF16";

    /// <summary>One tensor: offsets are relative to the start of the data region.</summary>
    internal readonly record struct Entry(DType DType, int[] Shape, long Begin, long ByteLength)
    {
        public long End => Begin + ByteLength;
    }

    private SafeTensorsHeader(Dictionary<string, Entry> entries, string[] namesInOrder, IReadOnlyDictionary<string, string> metadata)
    {
        Entries = entries;
        NamesInOrder = namesInOrder;
        Metadata = metadata;
    }

    public Dictionary<string, Entry> Entries { get; }
    public string[] NamesInOrder { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafeTensorsHeader Parse(string path, ReadOnlySpan<byte> json, long dataRegionLength)
    {
        // Checked up front so the message says "UTF-8" rather than whatever the JSON reader trips over.
        if (!Utf8.IsValid(json))
            throw Error(path, "header is not valid UTF-8");

        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var names = new List<string>();
        Dictionary<string, string>? metadata = null;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw Error(path, $"header must be a JSON object, found {Describe(reader)}");
            var shapeBuffer = new List<int>();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string name = reader.GetString()!;
                reader.Read();
                if (name == MetadataKey)
                {
                    if (metadata is not null) throw Error(path, $"\"{MetadataKey}\" appears twice in the header");
                    metadata = ReadMetadata(path, ref reader);
                    continue;
                }
                if (entries.ContainsKey(name))
                    throw Error(path, $"tensor \"{name}\" appears twice in the header");
                entries.Add(name, ReadEntry(path, name, ref reader, shapeBuffer, dataRegionLength));
                names.Add(name);
            }
            // A complete root object followed only by whitespace (the spec pads with spaces) reads to the end;
            // anything else after it makes Read throw.
            if (reader.Read())
                throw Error(path, $"unexpected {Describe(reader)} after the header object");
        }
        catch (JsonException exception)
        {
            throw new ModelFormatException(path, $"header is not valid JSON: {exception.Message}", exception);
        }
        catch (InvalidOperationException exception)
        {
            // A string escape that is not valid UTF-16 (a lone surrogate such as "\ud800") cannot be read as a string.
            throw new ModelFormatException(path, $"header holds a string that is not valid text: {exception.Message}", exception);
        }

        CheckDataRegionIsExactlyCovered(path, entries, names, dataRegionLength);
        return new SafeTensorsHeader(entries, [.. names], (IReadOnlyDictionary<string, string>?)metadata ?? new Dictionary<string, string>(0));
    }

    private static Dictionary<string, string> ReadMetadata(string path, ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Error(path, $"\"{MetadataKey}\" must be a JSON object of strings, found {Describe(reader)}");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string key = reader.GetString()!;
            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
                throw Error(path, $"\"{MetadataKey}\".\"{key}\" must be a string, found {Describe(reader)}");
            if (!metadata.TryAdd(key, reader.GetString()!))
                throw Error(path, $"\"{MetadataKey}\".\"{key}\" appears twice");
        }
        return metadata;
    }

    private static Entry ReadEntry(string path, string name, ref Utf8JsonReader reader, List<int> shapeBuffer, long dataRegionLength)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            throw TensorError(path, name, $"entry must be a JSON object with dtype, shape and data_offsets, found {Describe(reader)}");

        DType? dtype = null;
        int[]? shape = null;
        (long Begin, long End)? offsets = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            // Unknown keys are refused rather than skipped: they would mean a variant of the format we do not understand.
            if (reader.ValueTextEquals("dtype"u8))
            {
                if (dtype is not null) throw TensorError(path, name, "\"dtype\" appears twice");
                reader.Read();
                dtype = ReadDType(path, name, ref reader);
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                if (shape is not null) throw TensorError(path, name, "\"shape\" appears twice");
                reader.Read();
                shape = ReadShape(path, name, ref reader, shapeBuffer);
            }
            else if (reader.ValueTextEquals("data_offsets"u8))
            {
                if (offsets is not null) throw TensorError(path, name, "\"data_offsets\" appears twice");
                reader.Read();
                offsets = ReadOffsets(path, name, ref reader);
            }
            else
            {
                throw TensorError(path, name, $"unexpected key \"{reader.GetString()}\" (expected dtype, shape and data_offsets)");
            }
        }

        if (dtype is null) throw TensorError(path, name, "missing \"dtype\" (each entry needs dtype, shape and data_offsets)");
        if (shape is null) throw TensorError(path, name, "missing \"shape\" (each entry needs dtype, shape and data_offsets)");
        if (offsets is not { } range) throw TensorError(path, name, "missing \"data_offsets\" (each entry needs dtype, shape and data_offsets)");

        if (range.Begin > range.End)
            throw TensorError(path, name, $"data_offsets [{range.Begin}, {range.End}] begin after they end");
        if (range.End > dataRegionLength)
            throw TensorError(path, name, $"data_offsets [{range.Begin}, {range.End}] run past the end of the data region ({dataRegionLength} bytes; truncated file?)");

        long byteLength = range.End - range.Begin;
        if (!TryGetByteLength(shape, dtype.Value, out long expectedBytes) || expectedBytes != byteLength)
        {
            string expected = expectedBytes < 0 ? "more than 2^63" : expectedBytes.ToString();
            throw TensorError(path, name, $"shape {FormatShape(shape)} of {dtype.Value.SafeTensorsName()} needs {expected} bytes, but data_offsets [{range.Begin}, {range.End}] hold {byteLength}");
        }
        return new Entry(dtype.Value, shape, range.Begin, byteLength);
    }

    private static DType ReadDType(string path, string name, ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.String)
            throw TensorError(path, name, $"\"dtype\" must be a string, found {Describe(reader)}");
        if (reader.ValueTextEquals("F32"u8)) return DType.F32;
        if (reader.ValueTextEquals("F16"u8)) return DType.F16;
        if (reader.ValueTextEquals("BF16"u8)) return DType.BF16;
        throw TensorError(path, name, $"unsupported dtype \"{reader.GetString()}\" (supported: {SupportedDTypes})");
    }

    private static int[] ReadShape(string path, string name, ref Utf8JsonReader reader, List<int> dimensions)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            throw TensorError(path, name, $"\"shape\" must be an array of non-negative integers, found {Describe(reader)}");
        dimensions.Clear();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long dimension))
                throw TensorError(path, name, $"\"shape\" dimension {dimensions.Count} must be an integer, found {Describe(reader)}");
            if (dimension < 0)
                throw TensorError(path, name, $"\"shape\" dimension {dimensions.Count} is {dimension}, expected a non-negative integer");
            if (dimension > int.MaxValue)
                throw TensorError(path, name, $"\"shape\" dimension {dimensions.Count} is {dimension}, over the supported maximum {int.MaxValue}");
            dimensions.Add((int)dimension);
        }
        return [.. dimensions];
    }

    private static (long Begin, long End) ReadOffsets(string path, string name, ref Utf8JsonReader reader)
    {
        const string Expected = "\"data_offsets\" must be [begin, end] with non-negative integers";
        if (reader.TokenType != JsonTokenType.StartArray)
            throw TensorError(path, name, $"{Expected}, found {Describe(reader)}");
        Span<long> offsets = stackalloc long[2];
        int count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long offset) || offset < 0)
                throw TensorError(path, name, $"{Expected}, found {Describe(reader)} at position {count}");
            if (count == 2)
                throw TensorError(path, name, $"{Expected}, found more than 2 numbers");
            offsets[count++] = offset;
        }
        if (count != 2)
            throw TensorError(path, name, $"{Expected}, found {count} number{(count == 1 ? "" : "s")}");
        return (offsets[0], offsets[1]);
    }

    /// <summary>product(shape) × dtype size; false (and -1) when that overflows a long.</summary>
    private static bool TryGetByteLength(int[] shape, DType dtype, out long byteLength)
    {
        // A zero dimension makes the product 0 even when the other dimensions would overflow.
        if (Array.IndexOf(shape, 0) >= 0)
        {
            byteLength = 0;
            return true;
        }
        try
        {
            long product = dtype.SizeInBytes();
            foreach (int dimension in shape) product = checked(product * dimension);
            byteLength = product;
            return true;
        }
        catch (OverflowException)
        {
            byteLength = -1;
            return false;
        }
    }

    /// <summary>
    /// The spec says the data region is entirely indexed: sorted by offset, each tensor must start where the
    /// previous one ended, and the last must end where the file does. Any gap or overlap is refused.
    /// </summary>
    private static void CheckDataRegionIsExactlyCovered(string path, Dictionary<string, Entry> entries, List<string> names, long dataRegionLength)
    {
        var byOffset = new (string Name, Entry Entry)[names.Count];
        for (int i = 0; i < byOffset.Length; i++) byOffset[i] = (names[i], entries[names[i]]);
        // Zero-length tensors sort before a tensor starting at the same offset, so they never read as overlaps.
        Array.Sort(byOffset, static (x, y) =>
        {
            int order = x.Entry.Begin.CompareTo(y.Entry.Begin);
            return order != 0 ? order : x.Entry.End.CompareTo(y.Entry.End);
        });

        long coveredUpTo = 0;
        string? previous = null;
        foreach (var (name, entry) in byOffset)
        {
            if (entry.Begin < coveredUpTo)
                throw TensorError(path, name, $"data_offsets [{entry.Begin}, {entry.End}] overlap tensor \"{previous}\", which ends at {coveredUpTo}");
            if (entry.Begin > coveredUpTo)
                throw TensorError(path, name, $"data_offsets [{entry.Begin}, {entry.End}] leave bytes [{coveredUpTo}, {entry.Begin}) of the data region unused "
                    + (previous is null ? "before it" : $"after tensor \"{previous}\"") + " (the data region must be entirely indexed)");
            coveredUpTo = entry.End;
            previous = name;
        }
        if (coveredUpTo != dataRegionLength)
            throw Error(path, $"bytes [{coveredUpTo}, {dataRegionLength}) of the {dataRegionLength}-byte data region belong to no tensor "
                + "(the data region must be entirely indexed; extra bytes at the end of the file?)");
    }

    private static string Describe(in Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.None => "nothing",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => $"the string \"{reader.GetString()}\"",
        JsonTokenType.Number => $"the number {System.Text.Encoding.UTF8.GetString(reader.ValueSpan)}",
        JsonTokenType.True => "true",
        JsonTokenType.False => "false",
        JsonTokenType.Null => "null",
        JsonTokenType.PropertyName => $"the key \"{reader.GetString()}\"",
        var other => other.ToString(),
    };

    internal static string FormatShape(IReadOnlyList<int> shape) => $"[{string.Join(", ", shape)}]";

    private static ModelFormatException Error(string path, string problem) => new(path, problem);

    private static ModelFormatException TensorError(string path, string name, string problem) => new(path, $"tensor \"{name}\": {problem}");
}
