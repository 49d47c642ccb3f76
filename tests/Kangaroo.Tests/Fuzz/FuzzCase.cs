using System.Runtime.InteropServices;

namespace Kangaroo.Tests.Fuzz;

/// <summary>What a mutation must end in.</summary>
public enum Expectation
{
    /// <summary>Loaded and generated, or refused with a documented exception: both are fine.</summary>
    Either,

    /// <summary>The mutation changes what the model means (or breaks it): loading must fail; a load that succeeds is a failure ("silently accepted").</summary>
    MustRefuse,

    /// <summary>The mutation is harmless (a symlink to a regular file, reordered keys, a stray unrelated file...): the model must load and generate.</summary>
    MustLoad,
}

/// <summary>One change to a case directory, applied after the base files are symlinked into it.</summary>
internal abstract record FileOp(string Path)
{
    /// <summary>Replaces the entry with a regular file holding these bytes (the symlink is removed first: the base is never written).</summary>
    public sealed record Write(string Path, byte[] Bytes) : FileOp(Path);

    public sealed record Delete(string Path) : FileOp(Path);

    /// <summary>A named pipe in place of the entry.</summary>
    public sealed record Fifo(string Path) : FileOp(Path);

    /// <summary>A symbolic link; <paramref name="Target"/> is absolute, or relative to the link's folder.</summary>
    public sealed record Symlink(string Path, string Target) : FileOp(Path);

    /// <summary>An empty directory in place of the entry.</summary>
    public sealed record Mkdir(string Path) : FileOp(Path);

    /// <summary>A sparse file: <paramref name="Prefix"/> then zeros up to <paramref name="Length"/> bytes (FileStream.SetLength: nothing is written).</summary>
    public sealed record Sparse(string Path, byte[] Prefix, long Length) : FileOp(Path);

    /// <summary>A symlink to a regular copy of the base file kept outside the case directory (the Hugging Face cache layout).</summary>
    public sealed record SymlinkToCopy(string Path) : FileOp(Path);

    /// <summary>A relative symlink ("../../x") to the base's own file.</summary>
    public sealed record RelativeLinkToBase(string Path) : FileOp(Path);
}

/// <summary>
/// One fuzz case: a base model directory, the changes made to it, and what the outcome must be. A case is a pure
/// function of (family, seed): <see cref="MutationGenerator.Create"/> rebuilds it exactly, so one failing case can be rerun alone.
/// </summary>
internal sealed class FuzzCase
{
    public required string Family { get; init; }
    public required long Seed { get; init; }
    public required FuzzBase Base { get; init; }
    public required string Description { get; init; }
    public required Expectation Expect { get; init; }
    /// <summary>Why the expectation is what it is (for MustRefuse: what the mutation changes).</summary>
    public string? ExpectReason { get; init; }
    /// <summary>The entry the mutation is about, relative to the model directory ("" = the directory itself).</summary>
    public required string Target { get; init; }
    public required IReadOnlyList<FileOp> Ops { get; init; }
    /// <summary>Config fields the mutation touched: a message that names one of them names the problem.</summary>
    public IReadOnlyList<string> Fields { get; init; } = [];
    /// <summary>A pickle whose code, if ever run, would create this file.</summary>
    public string? Marker { get; init; }

    public string Id => $"{Family}/{Seed}";

    /// <summary>The same case without its file operations (what a report keeps once the case has run).</summary>
    public FuzzCase WithoutContent() => new()
    {
        Family = Family, Seed = Seed, Base = Base, Description = Description, Expect = Expect, ExpectReason = ExpectReason,
        Target = Target, Ops = [], Fields = Fields, Marker = Marker,
    };

    public override string ToString() => $"{Id} [{Base.Name}] {Description}";
}

/// <summary>A case directory: the base's files as symlinks, then the case's changes.</summary>
internal sealed class CaseDirectory
{
    private readonly List<string> _fifos = [];

    private CaseDirectory(string path) => Path = path;

    public string Path { get; }
    public IReadOnlyList<string> Fifos => _fifos;

    public string Full(string relative) => relative.Length == 0 ? Path : System.IO.Path.Combine(Path, relative);

    public static CaseDirectory Create(string path, FuzzCase c, string copiesDirectory)
    {
        var d = new CaseDirectory(path);
        Directory.CreateDirectory(path);
        foreach (string dir in c.Base.Directories) Directory.CreateDirectory(d.Full(dir));
        foreach (string file in c.Base.Files) File.CreateSymbolicLink(d.Full(file), c.Base.FullPath(file));
        foreach (var op in c.Ops) d.Apply(op, c, copiesDirectory);
        return d;
    }

    private void Apply(FileOp op, FuzzCase c, string copiesDirectory)
    {
        string full = Full(op.Path);
        string? parent = System.IO.Path.GetDirectoryName(full);
        if (parent is not null && !Directory.Exists(parent)) Directory.CreateDirectory(parent);
        if (op is not FileOp.Delete || Exists(full)) Remove(full);
        switch (op)
        {
            case FileOp.Write w:
                File.WriteAllBytes(full, w.Bytes);
                break;
            case FileOp.Delete:
                break;
            case FileOp.Fifo:
                Native.MakeFifo(full);
                _fifos.Add(full);
                break;
            case FileOp.Symlink s:
                File.CreateSymbolicLink(full, s.Target);
                break;
            case FileOp.Mkdir:
                Directory.CreateDirectory(full);
                break;
            case FileOp.Sparse s:
                using (var stream = new FileStream(full, FileMode.CreateNew, FileAccess.Write))
                {
                    stream.Write(s.Prefix);
                    stream.SetLength(s.Length);
                }
                break;
            case FileOp.SymlinkToCopy:
                // A "blob" outside the case directory, like ~/.cache/huggingface/hub/models--x/blobs/<sha>.
                string blob = System.IO.Path.Combine(copiesDirectory, $"{c.Family}-{c.Seed}-{op.Path.Replace('/', '_')}");
                CopyEntry(c.Base.FullPath(op.Path), blob);
                File.CreateSymbolicLink(full, blob);
                break;
            case FileOp.RelativeLinkToBase:
                File.CreateSymbolicLink(full, System.IO.Path.GetRelativePath(parent!, c.Base.FullPath(op.Path)));
                break;
            default:
                throw new InvalidOperationException($"unknown op {op}");
        }
    }

    private static void CopyEntry(string source, string destination)
    {
        if (Directory.Exists(source))
        {
            Directory.CreateDirectory(destination);
            foreach (string f in Directory.EnumerateFiles(source)) File.Copy(f, System.IO.Path.Combine(destination, System.IO.Path.GetFileName(f)), true);
        }
        else
        {
            File.Copy(source, destination, overwrite: true);
        }
    }

    /// <summary>Whether anything (file, directory, link, pipe, even a dangling or looping link) is at the path.</summary>
    public static bool Exists(string path) =>
        File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget is not null;

    private static void Remove(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null || (info.Exists && !info.Attributes.HasFlag(FileAttributes.Directory)))
        {
            info.Delete();
            return;
        }
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
            return;
        }
        if (Exists(path)) File.Delete(path);
    }

    /// <summary>True when the path is (or links to) a regular file (not a directory, pipe or device, not a broken link).</summary>
    public static bool IsRegularFile(string path) => Native.EntryType(path) == "regular";

    /// <summary>
    /// Unblocks threads of a hung case that wait in open(2) on one of its pipes: opening the write end (non-blocking, so
    /// this never waits itself) lets a blocked reader's open return, and closing it gives that reader end-of-file.
    /// Returns how many pipes had a reader waiting.
    /// </summary>
    public int ReleaseFifos()
    {
        int released = 0;
        foreach (string fifo in _fifos)
            if (Native.OpenAndCloseForWriting(fifo)) released++;
        return released;
    }

    public void Delete()
    {
        try
        {
            if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>The few POSIX calls .NET has no API for (Linux).</summary>
internal static partial class Native
{
    private const int O_WRONLY = 1;
    private const int O_NONBLOCK = 0x800;

    [LibraryImport("libc", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkfifo(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int close(int fd);

    public static void MakeFifo(string path)
    {
        if (mkfifo(path, Convert.ToUInt32("644", 8)) != 0)
            throw new IOException($"mkfifo {path} failed: errno {Marshal.GetLastPInvokeError()}");
        lock (s_fifos) s_fifos.Add(System.IO.Path.GetFullPath(path));
    }

    /// <summary>Opens a FIFO's write end without blocking; false when no reader has it open (ENXIO) or it is gone.</summary>
    public static bool OpenAndCloseForWriting(string path)
    {
        int fd = open(path, O_WRONLY | O_NONBLOCK);
        if (fd < 0) return false;
        close(fd);
        return true;
    }

    /// <summary>Pipes this process made (the only pipes a case directory can hold).</summary>
    private static readonly HashSet<string> s_fifos = new(StringComparer.Ordinal);

    /// <summary>
    /// "regular", "directory", "fifo", "device" or null (nothing there, or a broken link) for what the path resolves to.
    /// Case directories only hold what the harness made, so pipes are the ones <see cref="MakeFifo"/> made and devices
    /// are links into /dev.
    /// </summary>
    public static string? EntryType(string path)
    {
        try
        {
            if (Directory.Exists(path)) return "directory";
            var info = new FileInfo(path);
            FileSystemInfo? resolved = info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true);
            if (resolved is null || !resolved.Exists) return null;
            if (resolved.FullName.StartsWith("/dev/", StringComparison.Ordinal)) return "device";
            lock (s_fifos) return s_fifos.Contains(resolved.FullName) ? "fifo" : "regular";
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
