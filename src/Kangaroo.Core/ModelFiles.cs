using System.Text.Json;

namespace Kangaroo;

/// <summary>
/// Every read of a user's model file goes through here, so that no input can hang, exhaust memory or escape as a raw
/// exception: only regular files are opened (a FIFO would block in open(2), <c>/dev/zero</c> never ends), their size is
/// bounded per format before anything is read, and every failure is a <see cref="ModelFormatException"/> naming the file.
/// </summary>
/// <remarks>
/// .NET reports no file type on Unix, but FIFOs, devices and <c>/proc</c> entries all have a size of 0 bytes, and no
/// format read here is valid when empty: a zero-length entry is refused before it is opened, and reads never go past
/// the size found then.
/// </remarks>
internal static class ModelFiles
{
    /// <summary>config.json, generation_config.json, an adapter's config.json: kilobytes in practice.</summary>
    public const long MaxConfigBytes = 16L << 20;

    /// <summary>tokenizer.model, tokenizer_config.json, tokenizer.json: a few megabytes for the largest vocabularies.</summary>
    public const long MaxTokenizerBytes = 256L << 20;

    /// <summary>model.safetensors.index.json: one line per tensor.</summary>
    public const long MaxIndexBytes = 100_000_000;

    /// <summary>The JSON reading rules of every configuration file (comments and trailing commas as transformers accepts them).</summary>
    public static readonly JsonDocumentOptions JsonOptions = new()
    {
        AllowTrailingCommas = true,
        CommentHandling = JsonCommentHandling.Skip,
        MaxDepth = 64,
    };

    /// <summary>
    /// Whether anything is at <paramref name="path"/>: a file, a directory, a FIFO or a symbolic link (also a dangling
    /// one), so that an optional file that is present but unusable is reported instead of being skipped.
    /// </summary>
    public static bool Exists(string path)
    {
        var info = new FileInfo(path);
        return info.Exists || Directory.Exists(path) || info.LinkTarget is not null;
    }

    /// <summary>
    /// The size of the regular file at <paramref name="path"/> (symbolic links followed), or a
    /// <see cref="ModelFormatException"/> saying why it cannot be read as <paramref name="expected"/>.
    /// </summary>
    public static long RequireRegularFile(string path, string expected)
    {
        FileInfo target;
        try
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is null) target = info;
            else
            {
                // On a FileInfo that is a link, the final target is a FileInfo too (also when it names a directory).
                target = (FileInfo)info.ResolveLinkTarget(returnFinalTarget: true)!;
                if (!target.Exists && !Directory.Exists(target.FullName))
                    throw new ModelFormatException(path, $"is a symbolic link to {target.FullName}, which does not exist; expected {expected}");
            }
        }
        catch (IOException e)
        {
            // Link loops and links too deep to follow.
            throw new ModelFormatException(path, $"is a symbolic link that cannot be followed ({e.Message}); expected {expected}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ModelFormatException(path, $"cannot be read: {e.Message}", e);
        }

        if (Directory.Exists(target.FullName))
            throw new ModelFormatException(path, $"is a directory; expected {expected}");
        if (!target.Exists)
            throw new ModelFormatException(path, $"not found; expected {expected}");
        long length = target.Length;
        if (length == 0)
            throw new ModelFormatException(path, $"is empty (0 bytes) or not a regular file (a FIFO, device or /proc entry); expected {expected}");
        return length;
    }

    /// <summary>The whole file, at most <paramref name="maxBytes"/> bytes of it; anything else is a <see cref="ModelFormatException"/>.</summary>
    public static byte[] ReadBounded(string path, long maxBytes, string expected)
    {
        long length = RequireRegularFile(path, expected);
        if (length > maxBytes)
            throw new ModelFormatException(path, $"is {length:N0} bytes, over the {maxBytes:N0}-byte limit for {expected} (wrong file?)");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            var bytes = new byte[length];
            int read = stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            if (read != bytes.Length)
                throw new ModelFormatException(path, $"shrank while it was read ({read:N0} of {length:N0} bytes)");
            return bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot be read: {e.Message}", e);
        }
    }

    /// <summary>Refuses bytes that are not UTF-8, naming the first bad byte (readers that skip validation would throw raw exceptions later).</summary>
    public static void RequireUtf8(ReadOnlySpan<byte> bytes, string path)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return;
        Span<char> scratch = stackalloc char[256];
        int offset = 0;
        while (true)
        {
            var status = System.Text.Unicode.Utf8.ToUtf16(bytes[offset..], scratch, out int read, out _, replaceInvalidSequences: false);
            offset += read;
            if (status != System.Buffers.OperationStatus.DestinationTooSmall) break;
        }
        throw new ModelFormatException(path, $"is not valid UTF-8 (byte 0x{bytes[offset]:x2} at offset {offset:N0})");
    }

    /// <summary>A configuration file parsed as JSON with <see cref="JsonOptions"/>; its top level must be an object.</summary>
    public static JsonDocument ReadJsonObject(string path, long maxBytes, string expected)
    {
        byte[] bytes = ReadBounded(path, maxBytes, expected);
        return ParseJsonObject(() => JsonDocument.Parse(bytes, JsonOptions), path);
    }

    /// <summary>
    /// Parses with <paramref name="parse"/> and checks what every configuration file must be: valid JSON, an object at
    /// the top level, every string readable; anything else is a <see cref="ModelFormatException"/> naming <paramref name="path"/>.
    /// </summary>
    public static JsonDocument ParseJsonObject(Func<JsonDocument> parse, string path)
    {
        JsonDocument document;
        try
        {
            document = parse();
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(path, $"is not valid JSON: {e.Message}", e);
        }
        try
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(path, $"expected a JSON object at the top level, found {document.RootElement.ValueKind}");
            RequireReadableStrings(document.RootElement);
            return document;
        }
        catch (InvalidOperationException e)
        {
            document.Dispose();
            throw new ModelFormatException(path, $"holds a string that is not valid text: {e.Message}", e);
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads every name and string once: an escape that is not valid UTF-16 (a lone surrogate such as "\ud800") passes
    /// the parser but makes GetString throw, which must happen here, as one error naming the file, not in a field reader.
    /// </summary>
    private static void RequireReadableStrings(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                _ = element.GetString();
                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    _ = property.Name;
                    RequireReadableStrings(property.Value);
                }
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray()) RequireReadableStrings(item);
                break;
        }
    }
}
