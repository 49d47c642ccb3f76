using Kangaroo.Cuda;
using Xunit;

namespace Kangaroo.Tests.CudaBinding;

/// <summary>The cache runs with a fake compiler, so it is tested on any machine.</summary>
public sealed class CubinCacheTests
{
    private const string Source = "extern \"C\" __global__ void k(float* y) { y[threadIdx.x] = 1.0f; }";
    private static readonly string[] Options = ["--gpu-architecture=sm_90", "-default-device", "--std=c++17"];

    private static string Key(string source = Source, string name = "k.cu", string arch = "sm_90", string[]? options = null, string version = "12.8") =>
        CubinCache.ComputeKey(source, name, arch, options ?? Options, version);

    [Fact]
    public void Key_is_stable_and_hex_sha256()
    {
        Assert.Equal(Key(), Key());
        Assert.Matches("^[0-9a-f]{64}$", Key());
    }

    [Fact]
    public void Every_input_changes_the_key()
    {
        var keys = new[]
        {
            Key(),
            Key(source: Source + " "),
            Key(name: "other.cu"),
            Key(arch: "sm_89"),
            Key(arch: "sm_90a"),
            Key(options: [.. Options, "-lineinfo"]),
            Key(options: [.. Options.Reverse()]),
            Key(version: "13.0"),
        };
        Assert.Equal(keys.Length, keys.Distinct().Count());
    }

    [Fact]
    public void Field_boundaries_are_part_of_the_key()
    {
        Assert.NotEqual(Key(options: ["a", "bc"]), Key(options: ["ab", "c"]));
        Assert.NotEqual(Key(options: ["x"], source: "y"), Key(options: [], source: "xy"));
    }

    [Fact]
    public void Second_request_is_served_from_disk()
    {
        using var directory = new TestDirectory("cubin");
        var cache = new CubinCache(directory.Path);
        int compilations = 0;
        byte[] Compile() { compilations++; return [0x7F, (byte)'E', (byte)'L', (byte)'F', 1, 2, 3]; }

        var first = cache.GetOrAdd(Key(), Compile);
        var second = new CubinCache(directory.Path).GetOrAdd(Key(), Compile); // a new process would do this

        Assert.Equal(1, compilations);
        Assert.Equal(first, second);
        Assert.True(File.Exists(cache.PathFor(Key())));
        Assert.Empty(Directory.GetFiles(directory.Path, "*.tmp")); // the temporary was moved, not left behind
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("truncated")]
    [InlineData("flipped")]
    [InlineData("empty")]
    public void Corrupt_entries_are_ignored_and_rewritten(string damage)
    {
        using var directory = new TestDirectory("cubin");
        var cache = new CubinCache(directory.Path);
        byte[] payload = [0x7F, (byte)'E', (byte)'L', (byte)'F', 9, 8, 7, 6, 5];
        cache.GetOrAdd(Key(), () => payload);
        var path = cache.PathFor(Key());
        var file = File.ReadAllBytes(path);
        switch (damage)
        {
            case "garbage": File.WriteAllText(path, "not a cubin at all, just text that is long enough to pass the header size"); break;
            case "truncated": File.WriteAllBytes(path, file[..^2]); break;
            case "flipped": file[^1] ^= 0xFF; File.WriteAllBytes(path, file); break;
            case "empty": File.WriteAllBytes(path, []); break;
        }

        int compilations = 0;
        var result = cache.GetOrAdd(Key(), () => { compilations++; return payload; });

        Assert.Equal(1, compilations);
        Assert.Equal(payload, result);
        Assert.True(cache.TryRead(Key(), out var reread)); // and the entry is good again
        Assert.Equal(payload, reread);
    }

    [Fact]
    public void A_failed_compilation_caches_nothing()
    {
        using var directory = new TestDirectory("cubin");
        var cache = new CubinCache(directory.Path);

        Assert.Throws<InvalidOperationException>(() => cache.GetOrAdd(Key(), () => throw new InvalidOperationException("compile error")));
        Assert.False(File.Exists(cache.PathFor(Key())));
    }

    [Fact]
    public void An_unwritable_cache_still_returns_the_compiled_bytes()
    {
        using var directory = new TestDirectory("cubin");
        var blocker = directory.Combine("file-not-folder");
        File.WriteAllText(blocker, "x"); // a file where the cache folder should be: CreateDirectory fails
        var cache = new CubinCache(blocker);

        var result = cache.GetOrAdd(Key(), () => [1, 2, 3]);

        Assert.Equal([1, 2, 3], result);
    }

    [Fact]
    public void Compiler_options_and_architecture_names()
    {
        Assert.Equal("sm_90", NvrtcCompiler.ArchitectureName((9, 0)));
        Assert.Equal("sm_90a", NvrtcCompiler.ArchitectureName((9, 0), architectureSpecific: true));
        Assert.Equal("sm_120", NvrtcCompiler.ArchitectureName((12, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => NvrtcCompiler.ArchitectureName((9, 10)));

        Assert.Equal(["--gpu-architecture=sm_89", "-default-device", "--std=c++17"], NvrtcCompiler.BuildOptions("sm_89", false, null));
        Assert.Equal(["--gpu-architecture=sm_90a", "-default-device", "--std=c++17", "-lineinfo", "-DTILE=64"],
            NvrtcCompiler.BuildOptions("sm_90a", true, ["-DTILE=64"]));
    }

    [Fact]
    public void Default_directory_ends_in_cubin()
    {
        Assert.Equal("cubin", Path.GetFileName(CubinCache.DefaultDirectory()));
    }
}
