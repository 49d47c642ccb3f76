using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace Kangaroo.Weights;

/// <summary>
/// One memory-mapped .safetensors file, read strictly: every problem with the header or the offsets is a
/// <see cref="ModelFormatException"/> naming the file (and the tensor where there is one).
/// </summary>
/// <remarks>
/// The whole file is mapped read-only once and the pointer acquired once, so <see cref="Get"/> is a dictionary
/// lookup and a pointer addition; all state is immutable after <see cref="Open"/>, so concurrent reads are safe.
/// </remarks>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Headers larger than this are refused (a corrupt length must not allocate gigabytes).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const int HeaderLengthPrefixBytes = sizeof(ulong);

    private readonly MemoryMappedFile _mappedFile;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _dataStart;
    private readonly Dictionary<string, SafeTensorsHeader.Entry> _entries;
    private readonly string[] _tensorNames;
    private int _disposed;

    private SafeTensorsFile(string path, MemoryMappedFile mappedFile, MemoryMappedViewAccessor view, byte* dataStart, SafeTensorsHeader header)
    {
        Path = path;
        _mappedFile = mappedFile;
        _view = view;
        _dataStart = dataStart;
        _entries = header.Entries;
        _tensorNames = header.NamesInOrder;
        Metadata = header.Metadata;
    }

    /// <summary>Opens and validates <paramref name="path"/>: header JSON, dtypes, offsets in bounds, non-overlapping, matching shape × dtype.</summary>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = System.IO.Path.GetFullPath(path);

        FileStream stream = OpenStream(path);
        MemoryMappedFile? mappedFile = null;
        MemoryMappedViewAccessor? view = null;
        bool pointerAcquired = false;
        try
        {
            long fileLength = stream.Length;
            // Also keeps us from mapping an empty file, which MemoryMappedFile refuses.
            if (fileLength < HeaderLengthPrefixBytes)
                throw new ModelFormatException(path, $"file is {fileLength} bytes, too short for a safetensors file (at least {HeaderLengthPrefixBytes} bytes: the header length)");

            mappedFile = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = mappedFile.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* mapStart = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref mapStart);
            pointerAcquired = true;
            byte* fileStart = mapStart + view.PointerOffset;

            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(fileStart, HeaderLengthPrefixBytes));
            if (headerLength > MaxHeaderBytes)
                throw new ModelFormatException(path, $"header length is {headerLength} bytes, over the {MaxHeaderBytes}-byte limit (corrupt file or not a safetensors file?)");
            long maxHeaderLength = fileLength - HeaderLengthPrefixBytes;
            if ((long)headerLength > maxHeaderLength)
                throw new ModelFormatException(path, $"header length is {headerLength} bytes, past the end of the file ({fileLength} bytes leave room for at most {maxHeaderLength}; truncated file?)");

            var headerBytes = new ReadOnlySpan<byte>(fileStart + HeaderLengthPrefixBytes, (int)headerLength);
            long dataOffset = HeaderLengthPrefixBytes + (long)headerLength;
            var header = SafeTensorsHeader.Parse(path, headerBytes, dataRegionLength: fileLength - dataOffset);
            return new SafeTensorsFile(path, mappedFile, view, fileStart + dataOffset, header);
        }
        catch (Exception exception)
        {
            if (pointerAcquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            mappedFile?.Dispose();
            stream.Dispose();
            if (exception is IOException or UnauthorizedAccessException)
                throw new ModelFormatException(path, $"cannot map the file: {exception.Message}", exception);
            throw;
        }
    }

    private static FileStream OpenStream(string path)
    {
        ModelFiles.RequireRegularFile(path, "a .safetensors file");
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelFormatException(path, "file not found", exception);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot read the file: {exception.Message}", exception);
        }
    }

    public string Path { get; }

    /// <summary>The optional "__metadata__" string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensor names in header order.</summary>
    public IReadOnlyList<string> TensorNames => _tensorNames;

    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>The tensor called <paramref name="name"/>; a <see cref="ModelFormatException"/> if absent.</summary>
    public TensorView Get(string name)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!_entries.TryGetValue(name, out var entry))
            throw new ModelFormatException(Path, $"no tensor named \"{name}\" in this file ({_entries.Count} tensors)");
        return new TensorView(name, Path, entry.DType, entry.Shape, _dataStart + entry.Begin, entry.ByteLength);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mappedFile.Dispose();
    }
}
