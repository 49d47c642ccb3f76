using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Kangaroo.Cuda;

/// <summary>
/// On-disk cache of compiled kernels, keyed by SHA-256 of everything that decides the output (source, program
/// name, architecture, options, compiler version). A file is written to a temporary name and moved into place,
/// so a reader never sees half an entry; each entry carries its length and SHA-256, so a truncated or otherwise
/// corrupt file is detected, ignored and rewritten. The cache is an optimisation only: any I/O failure falls back
/// to compiling.
/// </summary>
internal sealed class CubinCache
{
    private static ReadOnlySpan<byte> Magic => "KGCUBIN1"u8;
    private const int HeaderBytes = 8 + 8 + 32; // magic, payload length, payload SHA-256

    public CubinCache(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = directory;
    }

    public string Directory { get; }

    /// <summary><c>$KANGAROO_CACHE_DIR/cubin</c>, else <c>~/.cache/kangaroo/cubin</c> (XDG_CACHE_HOME honoured).</summary>
    public static string DefaultDirectory()
    {
        var root = Environment.GetEnvironmentVariable("KANGAROO_CACHE_DIR");
        if (string.IsNullOrWhiteSpace(root))
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            root = !string.IsNullOrWhiteSpace(xdg)
                ? Path.Combine(xdg, "kangaroo")
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "kangaroo");
        }
        return Path.Combine(root, "cubin");
    }

    /// <summary>
    /// The cache key: hex SHA-256 over length-prefixed fields, so that no two different inputs
    /// (e.g. options "a","bc" and "ab","c") hash the same stream of bytes.
    /// </summary>
    public static string ComputeKey(string source, string programName, string architecture, IReadOnlyList<string> options, string compilerVersion)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Append(hash, "kangaroo-cubin-v1");
        Append(hash, compilerVersion);
        Append(hash, architecture);
        Append(hash, programName);
        Span<byte> count = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(count, options.Count);
        hash.AppendData(count);
        foreach (var option in options)
            Append(hash, option);
        Append(hash, source);
        return Convert.ToHexStringLower(hash.GetHashAndReset());

        static void Append(IncrementalHash hash, string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(length, bytes.Length);
            hash.AppendData(length);
            hash.AppendData(bytes);
        }
    }

    public string PathFor(string key) => Path.Combine(Directory, key + ".cubin");

    /// <summary>The cached payload for <paramref name="key"/>, or <paramref name="compile"/>'s result (then stored).</summary>
    public byte[] GetOrAdd(string key, Func<byte[]> compile)
    {
        ArgumentNullException.ThrowIfNull(compile);
        if (TryRead(key, out var cached))
            return cached;
        var payload = compile();
        TryWrite(key, payload);
        return payload;
    }

    /// <summary>Reads and verifies an entry; false if absent, unreadable or corrupt.</summary>
    public bool TryRead(string key, out byte[] payload)
    {
        payload = [];
        byte[] file;
        try
        {
            file = File.ReadAllBytes(PathFor(key));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // includes FileNotFound / DirectoryNotFound
        }
        if (file.Length < HeaderBytes || !file.AsSpan(0, 8).SequenceEqual(Magic))
            return false;
        long length = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(8, 8));
        if (length != file.Length - HeaderBytes || length == 0)
            return false;
        var body = file.AsSpan(HeaderBytes);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(body, digest);
        if (!digest.SequenceEqual(file.AsSpan(16, 32)))
            return false;
        payload = body.ToArray();
        return true;
    }

    /// <summary>Writes an entry atomically (temporary file in the same folder, then rename); false if that failed.</summary>
    public bool TryWrite(string key, ReadOnlySpan<byte> payload)
    {
        string? temporary = null;
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            var file = new byte[HeaderBytes + payload.Length];
            Magic.CopyTo(file);
            BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(8, 8), payload.Length);
            SHA256.HashData(payload, file.AsSpan(16, 32));
            payload.CopyTo(file.AsSpan(HeaderBytes));

            temporary = Path.Combine(Directory, $"{key}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
            File.WriteAllBytes(temporary, file);
            File.Move(temporary, PathFor(key), overwrite: true);
            temporary = null;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        finally
        {
            if (temporary is not null)
            {
                try
                {
                    File.Delete(temporary);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // leave it; a stray .tmp is harmless
                }
            }
        }
    }
}
