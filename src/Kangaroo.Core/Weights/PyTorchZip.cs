using System.Buffers.Binary;

namespace Kangaroo.Weights;

/// <summary>One entry of a zip archive: where its (possibly compressed) bytes start in the file.</summary>
internal readonly record struct PyTorchZipEntry(string Name, int Method, long CompressedSize, long Size, long DataOffset)
{
    public const int Stored = 0;
    public const int Deflated = 8;
}

/// <summary>
/// A minimal zip directory reader over bytes already in memory (the memory-mapped checkpoint).
/// System.IO.Compression.ZipArchive does not expose where an entry's data starts, which memory-mapping
/// needs, so this reads the central directory itself: classic and zip64 end records, zip64 extra fields,
/// and each local header (whose extra field length may differ from the central one: torch pads it so
/// the data lands 64-byte aligned). Every inconsistency is a <see cref="ModelFormatException"/>.
/// </summary>
internal static unsafe class PyTorchZip
{
    private const uint LocalHeaderSignature = 0x04034b50;
    private const uint CentralHeaderSignature = 0x02014b50;
    private const uint EndSignature = 0x06054b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const int EndRecordSize = 22;
    private const int MaxEntries = 10_000_000;

    public static bool StartsWithZipSignature(byte* data, long length) =>
        length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(data, 4)) == LocalHeaderSignature;

    /// <summary>Reads the central directory of the zip at <paramref name="data"/>, in directory order.</summary>
    public static List<PyTorchZipEntry> ReadDirectory(string path, byte* data, long length)
    {
        var file = new Bytes(path, data, length);
        long end = FindEndRecord(file);
        long entryCount = file.U16(end + 10);
        long directorySize = file.U32(end + 12);
        long directoryOffset = file.U32(end + 16);

        // A zip64 locator sits right before the classic end record; torch always writes one, and its
        // values are the authoritative ones when the classic fields are saturated.
        if (end >= 20 && file.U32(end - 20) == Zip64LocatorSignature)
        {
            long zip64End = file.I64(end - 20 + 8, "zip64 end record offset");
            if (file.U32(zip64End) != Zip64EndSignature)
                throw file.Error("zip64 end of central directory record is missing or corrupt");
            entryCount = file.I64(zip64End + 32, "entry count");
            directorySize = file.I64(zip64End + 40, "central directory size");
            directoryOffset = file.I64(zip64End + 48, "central directory offset");
        }
        if (directoryOffset > length || directorySize > length - directoryOffset)
            throw file.Error("the central directory lies outside the file (truncated?)");
        // Each central header takes at least 46 bytes: a corrupt count must not size a huge list.
        if (entryCount > MaxEntries || entryCount * 46 > directorySize)
            throw file.Error($"the central directory cannot hold {entryCount} entries");

        var entries = new List<PyTorchZipEntry>((int)entryCount);
        long p = directoryOffset;
        for (long i = 0; i < entryCount; i++)
        {
            if (file.U32(p) != CentralHeaderSignature)
                throw file.Error($"central directory entry {i} is corrupt");
            int flags = file.U16(p + 8);
            int method = file.U16(p + 10);
            long compressed = file.U32(p + 20);
            long size = file.U32(p + 24);
            int nameLength = file.U16(p + 28);
            int extraLength = file.U16(p + 30);
            int commentLength = file.U16(p + 32);
            long localOffset = file.U32(p + 42);
            string name = System.Text.Encoding.UTF8.GetString(file.Span(p + 46, nameLength));
            ReadZip64Extra(file, p + 46 + nameLength, extraLength, ref size, ref compressed, ref localOffset);
            if ((flags & 1) != 0)
                throw file.Error($"entry '{name}' is encrypted");

            if (file.U32(localOffset) != LocalHeaderSignature)
                throw file.Error($"local header of entry '{name}' is missing or corrupt");
            long dataOffset = localOffset + 30 + file.U16(localOffset + 26) + file.U16(localOffset + 28);
            if (dataOffset > length || compressed > length - dataOffset)
                throw file.Error($"entry '{name}' extends past the end of the file (truncated?)");
            entries.Add(new PyTorchZipEntry(name, method, compressed, size, dataOffset));
            p += 46 + nameLength + extraLength + commentLength;
        }
        return entries;
    }

    /// <summary>The classic end record: searched backwards, since a comment of up to 64 KiB may follow it.</summary>
    private static long FindEndRecord(Bytes file)
    {
        long lowest = Math.Max(0, file.Length - EndRecordSize - ushort.MaxValue);
        for (long p = file.Length - EndRecordSize; p >= lowest; p--)
        {
            if (file.U32(p) == EndSignature && p + EndRecordSize + file.U16(p + 20) == file.Length)
                return p;
        }
        throw file.Error("end of central directory not found (the file is truncated or not a zip archive)");
    }

    /// <summary>Zip64 extra field (id 1): 64-bit values for exactly those fields saturated at 0xFFFFFFFF, in this order.</summary>
    private static void ReadZip64Extra(Bytes file, long start, int length, ref long size, ref long compressed, ref long localOffset)
    {
        long p = start, end = start + length;
        while (p + 4 <= end)
        {
            int id = file.U16(p), fieldLength = file.U16(p + 2);
            if (id == 1)
            {
                long q = p + 4;
                if (size == uint.MaxValue) { size = file.I64(q, "zip64 size"); q += 8; }
                if (compressed == uint.MaxValue) { compressed = file.I64(q, "zip64 compressed size"); q += 8; }
                if (localOffset == uint.MaxValue) { localOffset = file.I64(q, "zip64 offset"); }
                return;
            }
            p += 4 + fieldLength;
        }
    }

    /// <summary>Bounds-checked little-endian reads; any read outside the file is a format error.</summary>
    private readonly struct Bytes(string path, byte* data, long length)
    {
        public long Length => length;

        public ReadOnlySpan<byte> Span(long offset, int count)
        {
            if (offset < 0 || count < 0 || offset > length - count)
                throw Error("a zip structure points outside the file (truncated or corrupt archive)");
            return new ReadOnlySpan<byte>(data + offset, count);
        }

        public int U16(long offset) => BinaryPrimitives.ReadUInt16LittleEndian(Span(offset, 2));
        public long U32(long offset) => BinaryPrimitives.ReadUInt32LittleEndian(Span(offset, 4));

        public long I64(long offset, string what)
        {
            long value = BinaryPrimitives.ReadInt64LittleEndian(Span(offset, 8));
            return value >= 0 ? value : throw Error($"zip {what} is negative (corrupt archive)");
        }

        public ModelFormatException Error(string problem) => new(path, "invalid zip archive: " + problem);
    }
}
