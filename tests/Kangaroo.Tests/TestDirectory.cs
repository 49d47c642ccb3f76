namespace Kangaroo.Tests;

/// <summary>A fresh, empty temporary directory, deleted (with everything in it) on <see cref="Dispose"/>.</summary>
public sealed class TestDirectory : IDisposable
{
    public TestDirectory(string? prefix = null)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kangaroo-{prefix ?? "test"}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>The path of <paramref name="relative"/> inside this directory (nothing is created).</summary>
    public string Combine(params string[] relative) => System.IO.Path.Combine([Path, .. relative]);

    /// <summary>Creates (if needed) and returns a subdirectory.</summary>
    public string CreateSubdirectory(string name) => Directory.CreateDirectory(Combine(name)).FullName;

    public override string ToString() => Path;

    public void Dispose()
    {
        try
        {
            if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
        catch (IOException) { /* a file still mapped or open elsewhere: leave it to the OS temp cleanup */ }
        catch (UnauthorizedAccessException) { }
    }
}
