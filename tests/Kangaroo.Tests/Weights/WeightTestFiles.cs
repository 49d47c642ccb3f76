using System.Buffers.Binary;
using System.Text;

namespace Kangaroo.Tests.Weights;

/// <summary>A fresh temporary directory, deleted with everything in it on Dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kangaroo-weights-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Builds malformed safetensors files byte by byte.</summary>
internal static class RawSafeTensors
{
    /// <summary>Writes the 8-byte little-endian length of <paramref name="headerJson"/>, the header, then <paramref name="dataBytes"/> zero bytes.</summary>
    public static string Write(string path, string headerJson, long dataBytes = 0)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        return Write(path, (ulong)header.Length, header, dataBytes);
    }

    public static string Write(string path, ulong declaredHeaderLength, ReadOnlySpan<byte> header, long dataBytes = 0)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, declaredHeaderLength);
        stream.Write(length);
        stream.Write(header);
        stream.Write(new byte[dataBytes]);
        return path;
    }

    /// <summary>
    /// On Linux, how many file descriptors and memory mappings of this process still refer to <paramref name="path"/>
    /// (the direct check for leaked handles; elsewhere -1, and callers fall back to delete/overwrite checks).
    /// </summary>
    public static int OpenReferences(string path)
    {
        if (!OperatingSystem.IsLinux()) return -1;
        string fullPath = System.IO.Path.GetFullPath(path);
        int count = 0;
        foreach (string fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget == fullPath) count++;
            }
            catch (IOException) { } // fd closed while enumerating
        }
        foreach (string line in System.IO.File.ReadLines("/proc/self/maps"))
        {
            if (line.EndsWith(" " + fullPath, StringComparison.Ordinal)) count++;
        }
        return count;
    }
}
