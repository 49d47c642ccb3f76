using System.Collections;
using System.IO.Compression;
using System.IO.MemoryMappedFiles;

namespace Kangaroo.Weights;

/// <summary>
/// A PyTorch checkpoint written by torch.save (PyTorch ≥ 1.6 zip format), e.g. the official Kangaroo adapter's
/// pytorch_model.bin, read strictly: every problem is a <see cref="ModelFormatException"/> naming the file.
/// </summary>
/// <remarks>
/// The file is memory-mapped and tensor views point straight into its uncompressed ("stored") storage entries,
/// so opening is cheap even for multi-GB shards and nothing is copied; views stay valid until
/// <see cref="Dispose"/>. The pickled state dict (data.pkl) is parsed with Razorvine.Pickle and never runs
/// Python code. Only the index is validated at open (storages present, large enough for every tensor);
/// a tensor with an unsupported dtype or a non-contiguous layout stays listed and <see cref="Get(string)"/>
/// explains why it cannot be read. Zip CRCs are not checked (that would read the whole file up front).
/// </remarks>
public sealed unsafe class PyTorchCheckpoint : IDisposable
{
    private const long MaxPickleBytes = 1L << 30;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly Dictionary<string, Entry> _tensors;
    private bool _disposed;

    /// <summary>One tensor of the index. <see cref="Problem"/> is set when it is listed but cannot be read.</summary>
    private sealed record Entry(DType DType, int[] Shape, long DataOffset, long ByteLength, string? Problem);

    private PyTorchCheckpoint(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePointer;
        (TensorNames, _tensors) = ReadIndex(path, basePointer, length);
    }

    /// <summary>Opens and validates <paramref name="path"/>; a <see cref="ModelFormatException"/> on any problem.</summary>
    public static PyTorchCheckpoint Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ModelFiles.RequireRegularFile(path, "a pytorch_model.bin file (PyTorch zip checkpoint)");

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        bool pointerAcquired = false;
        try
        {
            long length;
            try
            {
                var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
                length = stream.Length;
                if (length == 0)
                {
                    stream.Dispose();
                    throw new ModelFormatException(path, "file is empty; expected a PyTorch checkpoint (zip archive)");
                }
                map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
                view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ModelFormatException(path, $"cannot read the file: {e.Message}", e);
            }
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            pointerAcquired = true;
            return new PyTorchCheckpoint(path, map, view, pointer + view.PointerOffset, length);
        }
        catch
        {
            if (pointerAcquired)
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            throw;
        }
    }

    /// <summary>The file this checkpoint was opened from.</summary>
    public string Path { get; }

    /// <summary>Tensor names in the order of the pickled state dict.</summary>
    public IReadOnlyList<string> TensorNames { get; }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The tensor called <paramref name="name"/>; a <see cref="ModelFormatException"/> if absent or unreadable.</summary>
    public TensorView Get(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_tensors.TryGetValue(name, out var entry))
            throw new ModelFormatException(Path, $"tensor '{name}' not found (the checkpoint has {_tensors.Count} tensors)");
        if (entry.Problem is not null)
            throw new ModelFormatException(Path, $"tensor '{name}' {entry.Problem}");
        return new TensorView(name, Path, entry.DType, (int[])entry.Shape.Clone(), _base + entry.DataOffset, entry.ByteLength);
    }

    /// <summary>As <see cref="Get(string)"/>, and checks the shape: a mismatch names the tensor and both shapes.</summary>
    public TensorView Get(string name, params int[] expectedShape)
    {
        var view = Get(name);
        if (!view.Shape.SequenceEqual(expectedShape))
            throw new ModelFormatException(Path, $"tensor '{name}' has shape {FormatShape(view.Shape)}, expected {FormatShape(expectedShape)}");
        return view;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private static string FormatShape(IEnumerable<int> shape) => $"[{string.Join(", ", shape)}]";

    private static (string[] Names, Dictionary<string, Entry> Tensors) ReadIndex(string path, byte* file, long length)
    {
        if (!PyTorchZip.StartsWithZipSignature(file, length))
        {
            // The legacy format is a bare sequence of pickles, starting with a protocol opcode (0x80, version).
            if (length >= 2 && file[0] == 0x80 && file[1] <= 5)
                throw new ModelFormatException(path, "is in PyTorch's legacy (pre-1.6, non-zip) torch.save format, which is not supported; " +
                    "re-save it with PyTorch ≥ 1.6: torch.save(torch.load(path), path)");
            throw new ModelFormatException(path, "is not a PyTorch checkpoint: torch.save files are zip archives, this one does not start with a zip header");
        }

        var entries = new Dictionary<string, PyTorchZipEntry>();
        foreach (var e in PyTorchZip.ReadDirectory(path, file, length))
            entries[e.Name] = e;

        // The archive's top-level folder varies ("archive/", the file stem, ...): find data.pkl by name.
        var pickles = entries.Keys.Where(n => n == "data.pkl" || n.EndsWith("/data.pkl", StringComparison.Ordinal)).ToList();
        if (pickles.Count != 1)
            throw new ModelFormatException(path, pickles.Count == 0
                ? "the zip archive has no data.pkl; it is not a torch.save checkpoint"
                : $"the zip archive has several data.pkl entries ({string.Join(", ", pickles)})");
        string pickleName = pickles[0];
        string prefix = pickleName[..^"data.pkl".Length];

        if (entries.TryGetValue(prefix + "byteorder", out var byteOrderEntry))
        {
            string order = System.Text.Encoding.ASCII.GetString(ReadEntry(path, file, byteOrderEntry, 64)).Trim();
            if (order != "little")
                throw new ModelFormatException(path, order == "big"
                    ? "is a big-endian checkpoint (byteorder = big), which is not supported; re-save it on a little-endian machine"
                    : $"has an unknown byteorder '{order}'");
        }

        object? root;
        try
        {
            root = PyTorchUnpickler.Load(ReadEntry(path, file, entries[pickleName], MaxPickleBytes));
        }
        catch (Exception e) when (e is not ModelFormatException)
        {
            throw new ModelFormatException(path, $"cannot unpickle {pickleName}: {e.Message}", e);
        }
        if (root is not Hashtable dict)
            throw new ModelFormatException(path, $"{pickleName} holds a {root?.GetType().Name ?? "None"}, not a state dict; " +
                "save one with torch.save(model.state_dict(), path)");

        var records = new List<(string Name, PyTorchTensorRecord Record)>();
        foreach (DictionaryEntry item in dict)
        {
            if (item.Key is not string name)
                throw new ModelFormatException(path, $"state dict key {item.Key} is not a string");
            if (item.Value is not PyTorchTensorRecord record)
                throw new ModelFormatException(path, $"state dict entry '{name}' is a {item.Value?.GetType().Name ?? "None"}, not a tensor; " +
                    "expected a flat state dict of tensors");
            records.Add((name, record));
        }

        // Dicts come back as unordered Hashtables, but tensors are rebuilt in pickled order, i.e. the dict's order.
        // (The same tensor object under two names is rebuilt once; those names are ordered by name.)
        string[] names = records.OrderBy(r => r.Record.Sequence).ThenBy(r => r.Name, StringComparer.Ordinal).Select(r => r.Name).ToArray();

        var tensors = new Dictionary<string, Entry>(records.Count);
        foreach (var (name, record) in records)
            tensors[name] = MakeEntry(path, prefix, entries, name, record);
        return (names, tensors);
    }

    /// <summary>Validates one tensor against its storage entry; structural problems throw, unreadable ones become Entry.Problem.</summary>
    private static Entry MakeEntry(string path, string prefix, Dictionary<string, PyTorchZipEntry> entries, string name, PyTorchTensorRecord r)
    {
        ModelFormatException Error(string problem) => new(path, $"tensor '{name}': {problem}");

        string storageName = prefix + "data/" + r.Storage.Key;
        if (!entries.TryGetValue(storageName, out var storage))
            throw Error($"its storage entry '{storageName}' is missing from the archive");
        if (storage.Method != PyTorchZipEntry.Stored)
            throw Error($"its storage entry '{storageName}' is compressed (zip method {storage.Method}); torch.save stores storages " +
                "uncompressed — re-save the checkpoint with torch.save instead of re-zipping it");

        var storageType = PyTorchElementType.FromStorageType(r.Storage.TypeName);
        var elementType = r.DTypeName is null ? storageType : PyTorchElementType.FromName(r.DTypeName);
        string dtypeName = r.DTypeName ?? storageType?.Name ?? $"torch.{r.Storage.TypeName}";

        if (r.Size.Length != r.Stride.Length)
            throw Error($"size has {r.Size.Length} dimensions but stride has {r.Stride.Length}");
        if (r.Offset < 0 || r.Size.Any(s => s < 0 || s > int.MaxValue) || r.Stride.Any(s => s < 0))
            throw Error($"invalid storage offset {r.Offset}, size {FormatLongs(r.Size)} or stride {FormatLongs(r.Stride)}");
        if (r.Storage.ElementCount < 0)
            throw Error($"storage '{r.Storage.Key}' declares a negative element count");

        long storageBytes = storage.Size;
        if (storageType is { } st)
        {
            Int128 declared = (Int128)r.Storage.ElementCount * st.Size;
            if (declared > storage.Size)
                throw Error($"storage entry '{storageName}' holds {storage.Size} bytes, but its persistent id declares " +
                    $"{r.Storage.ElementCount} elements of {st.Size} bytes (truncated archive?)");
            storageBytes = (long)declared;
        }

        // Extent in elements: the last element any index can reach, plus one (Int128: corrupt sizes must not wrap).
        Int128 count = 1, extent = r.Offset + (Int128)1, expectedStride = 1;
        bool contiguous = true;
        for (int i = r.Size.Length - 1; i >= 0; i--)
        {
            count *= r.Size[i];
            extent += (Int128)(Math.Max(r.Size[i], 1) - 1) * r.Stride[i];
            // A dimension of size 1 may carry any stride (torch does not normalize it).
            if (r.Size[i] != 1 && r.Stride[i] != expectedStride)
                contiguous = false;
            expectedStride *= r.Size[i];
        }
        if (count == 0)
            contiguous = true;

        if (elementType is { } et)
        {
            Int128 needed = count == 0 ? r.Offset * (Int128)et.Size : extent * et.Size;
            if (needed > storageBytes)
                throw Error($"needs {needed} bytes of storage '{r.Storage.Key}' (offset {r.Offset}, size {FormatLongs(r.Size)}, " +
                    $"stride {FormatLongs(r.Stride)}) but the storage holds only {storageBytes} bytes");
        }

        int[] shape = Array.ConvertAll(r.Size, s => (int)s);
        if (elementType?.DType is not { } dtype)
            return new Entry(default, shape, 0, 0,
                $"has dtype {dtypeName}, which is not supported; only float32, float16 and bfloat16 tensors can be read");
        if (!contiguous)
            return new Entry(dtype, shape, 0, 0,
                $"is not contiguous (shape {FormatLongs(r.Size)}, stride {FormatLongs(r.Stride)}); only row-major contiguous tensors " +
                "can be read — save tensor.contiguous() instead");

        int size = elementType.Value.Size;
        return new Entry(dtype, shape, storage.DataOffset + r.Offset * size, (long)(count * size), null);
    }

    /// <summary>The bytes of a small entry (data.pkl, byteorder), inflating it if it was deflated.</summary>
    private static byte[] ReadEntry(string path, byte* file, PyTorchZipEntry entry, long maxBytes)
    {
        if (entry.Size > maxBytes)
            throw new ModelFormatException(path, $"zip entry '{entry.Name}' is {entry.Size} bytes, more than the {maxBytes} allowed");
        switch (entry.Method)
        {
            case PyTorchZipEntry.Stored:
                if (entry.CompressedSize != entry.Size)
                    throw new ModelFormatException(path, $"zip entry '{entry.Name}' is stored but its sizes disagree");
                return new ReadOnlySpan<byte>(file + entry.DataOffset, (int)entry.Size).ToArray();
            case PyTorchZipEntry.Deflated:
                try
                {
                    using var input = new UnmanagedMemoryStream(file + entry.DataOffset, entry.CompressedSize);
                    using var inflater = new DeflateStream(input, CompressionMode.Decompress);
                    var result = new byte[entry.Size];
                    inflater.ReadExactly(result);
                    return result;
                }
                catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
                {
                    throw new ModelFormatException(path, $"zip entry '{entry.Name}' cannot be inflated: {e.Message}", e);
                }
            default:
                throw new ModelFormatException(path, $"zip entry '{entry.Name}' uses unsupported compression method {entry.Method}");
        }
    }

    private static string FormatLongs(long[] values) => $"[{string.Join(", ", values)}]";
}
