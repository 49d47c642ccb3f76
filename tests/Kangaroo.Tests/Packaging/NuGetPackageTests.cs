using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Packaging;

/// <summary>
/// Slow: these tests pack, restore and build with the .NET SDK, which loads every core, so they run alone, after the
/// parallel tests, where they cannot slow a timed test down.
/// </summary>
[CollectionDefinition("NuGet packages (slow)", DisableParallelization = true)]
public sealed class NuGetPackageCollection;

/// <summary>
/// The repository packed as a user gets it: <c>dotnet pack</c> of the solution into a fresh local feed, under a version
/// no earlier run used, so neither NuGet's caches nor an old feed can hand back a package of another build.
/// </summary>
public sealed class PackedFeed : IAsyncLifetime
{
    public const string Prompt = "def fibonacci(n):";

    /// <summary>What docs/nuget/README.md's program asks for; the CLI run is given the same.</summary>
    public const int MaxNewTokens = 32;

    private readonly TestDirectory _directory = new("nuget");

    public string RepositoryRoot { get; } = FindRepositoryRoot();

    public string Version { get; } = $"0.1.0-test.{Guid.NewGuid():N}";

    public string Feed => _directory.Combine("feed");

    public string Directory => _directory.Path;

    /// <summary>The greedy text the library gives in this process for <see cref="Prompt"/> on the demo model (CPU).</summary>
    public string ExpectedText { get; private set; } = "";

    /// <summary>Every package in the feed by id: its .nupkg's entries.</summary>
    public IReadOnlyDictionary<string, ZipArchive> Packages => _packages;

    private readonly Dictionary<string, ZipArchive> _packages = new(StringComparer.Ordinal);

    /// <summary>Why these tests cannot run here, or null: packing needs the .NET SDK, which a runtime-only machine (the GPU one) lacks.</summary>
    public static string? Unavailable { get; } = Sdk.Installed ? null : $"no .NET SDK beside the runtime in {Sdk.DotnetRoot}: packing needs one";

    public static void SkipWithoutSdk() => Assert.SkipWhen(Unavailable is not null, Unavailable ?? "");

    public async ValueTask InitializeAsync()
    {
        if (Unavailable is not null) return;
        // The test binaries' own configuration, packed without building: the packages hold the very assemblies the
        // rest of the suite tested, and no second build competes for the cores. The tool package is whatever its
        // publish folder holds, so that folder is a fresh one: files of an earlier publish cannot slip in.
        string configuration = typeof(PackedFeed).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        var pack = await Sdk.RunAsync(RepositoryRoot,
            ["pack", Path.Combine(RepositoryRoot, "Kangaroo.Native.sln"), "-c", configuration, "--no-build",
             "-o", Feed, $"-p:Version={Version}", $"-p:PublishDir={_directory.Combine("publish")}{Path.DirectorySeparatorChar}"]);
        if (pack.ExitCode != 0) throw new Xunit.Sdk.XunitException($"dotnet pack failed:\n{pack}");

        foreach (string path in System.IO.Directory.EnumerateFiles(Feed, "*.nupkg"))
        {
            string name = Path.GetFileName(path);
            string suffix = $".{Version}.nupkg";
            Assert.True(name.EndsWith(suffix, StringComparison.Ordinal), $"{name} is not of version {Version}");
            _packages[name[..^suffix.Length]] = ZipFile.OpenRead(path);
        }

        using var backend = new CpuBackend();
        using var model = LanguageModel.Load(TestModels.DemoDirectory, new ModelLoadOptions { Backend = backend });
        ExpectedText = model.Generate(Prompt, new GenerationOptions { MaxNewTokens = MaxNewTokens }).Text;
    }

    public ValueTask DisposeAsync()
    {
        foreach (var package in _packages.Values) package.Dispose();
        _directory.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// A folder outside the repository for a user's project, with a nuget.config that adds the local feed to the
    /// machine's sources. Restores write to the folder's own packages directory (the machine's global packages folder
    /// serves as a read-only fallback, so dependencies are not fetched again and no test version is left behind there),
    /// and empty Directory.Build.props/.targets/.Packages.props stop MSBuild's upward search, so nothing of the
    /// repository, or of whatever lies above the temporary directory, leaks into the build.
    /// </summary>
    public async Task<string> CreateUserDirectoryAsync(string name)
    {
        string directory = System.IO.Directory.CreateDirectory(Path.Combine(Directory, name)).FullName;
        Assert.False(directory.StartsWith(RepositoryRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal),
            $"the temporary directory {directory} lies inside the repository, whose Directory.Build.props would apply");
        var locals = await Sdk.RunAsync(directory, ["nuget", "locals", "global-packages", "--list"]);
        Assert.True(locals.ExitCode == 0, locals.ToString());
        var global = Regex.Match(locals.Stdout, @"global-packages:\s*(\S.*?)\s*$", RegexOptions.Multiline);
        Assert.True(global.Success, locals.ToString());

        var config = new XDocument(new XElement("configuration",
            new XElement("packageSources", Add("kangaroo-test-feed", Feed)),
            new XElement("config", Add("globalPackagesFolder", Path.Combine(Directory, "packages"))),
            new XElement("fallbackPackageFolders", Add("machine", global.Groups[1].Value))));
        config.Save(Path.Combine(directory, "nuget.config"));
        foreach (string file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
            File.WriteAllText(Path.Combine(directory, file), "<Project />\n");
        return directory;

        static XElement Add(string key, string value) => new("add", new XAttribute("key", key), new XAttribute("value", value));
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kangaroo.Native.sln"))) return dir.FullName;
        throw new Xunit.Sdk.XunitException($"no Kangaroo.Native.sln above {AppContext.BaseDirectory}: nothing to pack");
    }
}

[Collection("NuGet packages (slow)")]
public sealed class NuGetPackageTests(PackedFeed feed) : IClassFixture<PackedFeed>
{
    private const string IdPrefix = "Kangaroo.Native.";

    /// <summary>What issue 19 asks to ship; any other project under src/ is a package too unless it opts out.</summary>
    private static readonly string[] RequiredIds =
    [
        "Kangaroo.Native.Core", "Kangaroo.Native.Backends.Cpu", "Kangaroo.Native.Backends.Cuda", "Kangaroo.Native.Cuda",
        "Kangaroo.Native.Backends.Ilgpu", "Kangaroo.Native.Backends.Selection", "Kangaroo.Native.Extensions.AI",
        "Kangaroo.Native.Server", "Kangaroo.Native.Cli",
    ];

    private const string ToolId = "Kangaroo.Native.Cli";

    [Fact]
    public void EverySourceProjectButTheInternalToolsIsAPackageOfTheOneVersion()
    {
        PackedFeed.SkipWithoutSdk();
        var expected = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string project in Directory.EnumerateFiles(Path.Combine(feed.RepositoryRoot, "src"), "*.csproj", SearchOption.AllDirectories))
        {
            if (File.ReadAllText(project).Contains("<IsPackable>false</IsPackable>", StringComparison.Ordinal)) continue;
            string name = Path.GetFileNameWithoutExtension(project);
            expected.Add(IdPrefix + name["Kangaroo.".Length..]);
        }
        Assert.Equal(expected, new SortedSet<string>(feed.Packages.Keys, StringComparer.Ordinal));
        Assert.Subset(expected, new HashSet<string>(RequiredIds));
        Assert.DoesNotContain("Kangaroo.Native.Tools", feed.Packages.Keys);
    }

    [Fact]
    public void EveryPackageCarriesItsMetadataReadmeDocsAndSymbols()
    {
        PackedFeed.SkipWithoutSdk();
        Assert.NotEmpty(feed.Packages);
        foreach (var (id, package) in feed.Packages)
        {
            var metadata = Nuspec(package, id);
            Assert.Equal(id, Value(metadata, "id"));
            Assert.Equal(feed.Version, Value(metadata, "version"));
            Assert.Equal("Kangaroo.Native contributors", Value(metadata, "authors"));
            var license = Child(metadata, "license");
            Assert.True(license is not null && (string?)license.Attribute("type") == "expression" && license.Value == "MIT", $"{id}: license {license}");
            Assert.False(string.IsNullOrWhiteSpace(Value(metadata, "description")), $"{id}: no description");
            Assert.Contains("llama", Value(metadata, "tags") ?? "", StringComparison.Ordinal);
            Assert.Equal("README.md", Value(metadata, "readme"));
            Assert.NotNull(package.GetEntry("README.md"));

            string assembly = id == ToolId ? "kangaroo" : "Kangaroo." + id[IdPrefix.Length..];
            string folder = id == ToolId ? "tools/net10.0/any/" : "lib/net10.0/";
            Assert.True(package.GetEntry(folder + assembly + ".dll") is not null, $"{id}: no {folder}{assembly}.dll");
            Assert.True(package.GetEntry(folder + assembly + ".xml") is not null, $"{id}: no XML documentation {folder}{assembly}.xml");
            string symbols = Path.Combine(feed.Feed, $"{id}.{feed.Version}.snupkg");
            Assert.True(File.Exists(symbols), $"{id}: no symbol package");
            using var snupkg = ZipFile.OpenRead(symbols);
            Assert.True(snupkg.GetEntry(folder + assembly + ".pdb") is not null, $"{id}: the symbol package has no {assembly}.pdb");
        }
    }

    /// <summary>
    /// Each Kangaroo.Native dependency is a package of this feed at the same version: a library that depended on a
    /// project that is not packed (Kangaroo.Tools) would not restore for a user.
    /// </summary>
    [Fact]
    public void PackagesDependOnEachOtherAtTheirOwnVersion()
    {
        PackedFeed.SkipWithoutSdk();
        int internalDependencies = 0;
        foreach (var (id, package) in feed.Packages)
        {
            var dependencies = Nuspec(package, id).Descendants().Where(e => e.Name.LocalName == "dependency");
            foreach (var dependency in dependencies)
            {
                string dependencyId = (string)dependency.Attribute("id")!;
                if (!dependencyId.StartsWith(IdPrefix, StringComparison.Ordinal)) continue;
                internalDependencies++;
                Assert.True(feed.Packages.ContainsKey(dependencyId), $"{id} depends on {dependencyId}, which is not packed");
                Assert.Equal(feed.Version, (string?)dependency.Attribute("version"));
            }
        }
        Assert.True(internalDependencies >= 8, $"only {internalDependencies} dependencies between the packages");
        var selection = Nuspec(feed.Packages["Kangaroo.Native.Backends.Selection"], "Kangaroo.Native.Backends.Selection");
        var selected = selection.Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => (string)e.Attribute("id")!);
        Assert.Subset(selected.ToHashSet(), new HashSet<string> { "Kangaroo.Native.Backends.Cpu", "Kangaroo.Native.Backends.Cuda", "Kangaroo.Native.Backends.Ilgpu" });
    }

    /// <summary>The CUDA backend compiles its kernels from sources embedded in its assembly: the packaged one has them all.</summary>
    [Fact]
    public void TheCudaBackendPackageEmbedsEveryKernelSource()
    {
        PackedFeed.SkipWithoutSdk();
        const string id = "Kangaroo.Native.Backends.Cuda";
        var entry = feed.Packages[id].GetEntry("lib/net10.0/Kangaroo.Backends.Cuda.dll");
        Assert.NotNull(entry);
        var image = new MemoryStream();
        using (var stream = entry.Open()) stream.CopyTo(image);
        image.Position = 0;
        using var pe = new PEReader(image);
        var reader = pe.GetMetadataReader();
        var resources = reader.ManifestResources.Select(h => reader.GetString(reader.GetManifestResource(h).Name)).ToHashSet(StringComparer.Ordinal);

        string kernels = Path.Combine(feed.RepositoryRoot, "kernels");
        var sources = Directory.EnumerateFiles(kernels, "*.cu").Append(Path.Combine(kernels, "common.cuh")).ToList();
        Assert.True(sources.Count >= 3, $"only {sources.Count} kernel sources in {kernels}");
        foreach (string source in sources)
            Assert.True(resources.Contains("kernels/" + Path.GetFileName(source)), $"{id}'s assembly lacks kernels/{Path.GetFileName(source)}: it has {string.Join(", ", resources)}");
    }

    [Fact]
    public void TheToolPackageIsTheKangarooCommandWithTheDemoModelBesideIt()
    {
        PackedFeed.SkipWithoutSdk();
        var tool = feed.Packages[ToolId];
        var metadata = Nuspec(tool, ToolId);
        Assert.Contains(metadata.Descendants(), e => e.Name.LocalName == "packageType" && (string?)e.Attribute("name") == "DotnetTool");
        // A tool package carries its dependencies' assemblies, so it depends on no package.
        Assert.DoesNotContain(metadata.Descendants(), e => e.Name.LocalName == "dependency");

        var settings = XDocument.Load(tool.GetEntry("tools/net10.0/any/DotnetToolSettings.xml")!.Open());
        var command = Assert.Single(settings.Descendants(), e => e.Name.LocalName == "Command");
        Assert.Equal("kangaroo", (string?)command.Attribute("Name"));
        Assert.Equal("kangaroo.dll", (string?)command.Attribute("EntryPoint"));
        Assert.NotNull(tool.GetEntry("tools/net10.0/any/Kangaroo.Tools.dll"));

        string demo = Path.Combine(feed.RepositoryRoot, "models", "demo");
        var files = Directory.EnumerateFiles(demo, "*", SearchOption.AllDirectories).ToList();
        Assert.Contains(files, f => Path.GetFileName(f) == "model.safetensors");
        foreach (string file in files)
        {
            string path = "tools/net10.0/any/models/demo/" + Path.GetRelativePath(demo, file).Replace('\\', '/');
            var entry = tool.GetEntry(path);
            Assert.True(entry is not null, $"the tool package lacks {path}");
            Assert.Equal(new FileInfo(file).Length, entry.Length);
        }
    }

    /// <summary>
    /// docs/nuget/README.md's program (the README in every package), built in a new project outside the repository
    /// against the packages by version, gives the library's text in this process for the same prompt and options.
    /// </summary>
    [Fact]
    public async Task TheReadmeProgramBuiltAgainstThePackagesGeneratesTheLibrarysText()
    {
        PackedFeed.SkipWithoutSdk();
        string readme = File.ReadAllText(Path.Combine(feed.RepositoryRoot, "docs", "nuget", "README.md")).Replace("\r\n", "\n");
        var block = Regex.Match(readme, @"^```csharp[ \t]*\n(?<code>.*?)^```[ \t]*$", RegexOptions.Multiline | RegexOptions.Singleline);
        Assert.True(block.Success, "docs/nuget/README.md has no C# block");
        string program = block.Groups["code"].Value;
        Assert.True(program.Contains($"MaxNewTokens = {PackedFeed.MaxNewTokens}", StringComparison.Ordinal),
            $"docs/nuget/README.md's program no longer asks for MaxNewTokens = {PackedFeed.MaxNewTokens}: keep PackedFeed.MaxNewTokens in step");

        string app = await feed.CreateUserDirectoryAsync("app");
        File.WriteAllText(Path.Combine(app, "Program.cs"), program);
        File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Kangaroo.Native.Core" Version="{feed.Version}" />
                <PackageReference Include="Kangaroo.Native.Backends.Selection" Version="{feed.Version}" />
              </ItemGroup>
            </Project>
            """);

        var build = await Sdk.RunAsync(app, ["build", "-c", "Release", "--disable-build-servers"]);
        Assert.True(build.ExitCode == 0, $"the user's project does not build against the packages:\n{build}");
        string assets = File.ReadAllText(Path.Combine(app, "obj", "project.assets.json"));
        foreach (string id in new[] { "Kangaroo.Native.Core", "Kangaroo.Native.Backends.Cpu", "Kangaroo.Native.Backends.Cuda", "Kangaroo.Native.Backends.Ilgpu" })
            Assert.Contains($"\"{id}/{feed.Version}\"", assets, StringComparison.Ordinal);

        string dll = Path.Combine(app, "bin", "Release", "net10.0", "App.dll");
        var run = await Sdk.RunAsync(app, [dll, TestModels.DemoDirectory, PackedFeed.Prompt, "cpu"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.False(string.IsNullOrWhiteSpace(feed.ExpectedText));
        Assert.Equal(feed.ExpectedText, run.Stdout);
    }

    /// <summary>
    /// <c>dotnet tool install</c> from the feed gives a <c>kangaroo</c> command whose <c>generate</c>, with no model
    /// given, finds the demo model installed with it and prints the library's text.
    /// </summary>
    [Fact]
    public async Task TheInstalledToolGeneratesTheLibrarysTextWithItsOwnDemoModel()
    {
        PackedFeed.SkipWithoutSdk();
        string user = await feed.CreateUserDirectoryAsync("tool-user");
        string toolPath = Path.Combine(user, "tools");
        var install = await Sdk.RunAsync(user,
            ["tool", "install", "--tool-path", toolPath, "--add-source", feed.Feed, ToolId, "--version", feed.Version]);
        Assert.True(install.ExitCode == 0, $"dotnet tool install failed:\n{install}");

        string kangaroo = Path.Combine(toolPath, OperatingSystem.IsWindows() ? "kangaroo.exe" : "kangaroo");
        Assert.True(File.Exists(kangaroo), $"no {kangaroo} after the install:\n{install}");
        var run = await Sdk.RunProcessAsync(kangaroo, user,
            ["generate", "--max-tokens", PackedFeed.MaxNewTokens.ToString(), "--backend", "cpu", PackedFeed.Prompt]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.False(string.IsNullOrWhiteSpace(feed.ExpectedText));
        Assert.Equal(feed.ExpectedText + "\n", run.Stdout);
        Assert.StartsWith("[cpu] prompt tokens: ", run.Stderr, StringComparison.Ordinal);
    }

    private static XElement Nuspec(ZipArchive package, string id)
    {
        var entry = package.Entries.SingleOrDefault(e => e.FullName == id + ".nuspec");
        Assert.True(entry is not null, $"{id}: no {id}.nuspec");
        using var stream = entry.Open();
        return XDocument.Load(stream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static XElement? Child(XElement metadata, string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name);

    private static string? Value(XElement metadata, string name) => Child(metadata, name)?.Value;
}

/// <summary>What one process gave.</summary>
public sealed record ProcessResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"{Command}\nexit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>Runs the .NET SDK (the one this test process runs on) and programs it installed, as a user's shell would.</summary>
public static class Sdk
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(8);

    /// <summary>The dotnet installation this process runs on: shared/Microsoft.NETCore.App/VERSION/ is three levels below it.</summary>
    public static string DotnetRoot { get; } =
        Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

    /// <summary>Whether an SDK is installed beside the runtime (dotnet/sdk/VERSION/), not only the runtime.</summary>
    public static bool Installed { get; } =
        System.IO.Directory.Exists(Path.Combine(DotnetRoot, "sdk")) && System.IO.Directory.EnumerateDirectories(Path.Combine(DotnetRoot, "sdk")).Any();

    private static string Dotnet
    {
        get
        {
            string path = Path.Combine(DotnetRoot, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
            return File.Exists(path) ? path : "dotnet";
        }
    }

    public static Task<ProcessResult> RunAsync(string workingDirectory, IReadOnlyList<string> arguments) =>
        RunProcessAsync(Dotnet, workingDirectory, arguments);

    public static async Task<ProcessResult> RunProcessAsync(string program, string workingDirectory, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        // A test run started by `dotnet test` hands its MSBuild settings down; a user's shell has none of them.
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(key);
        start.Environment["DOTNET_ROOT"] = DotnetRoot;
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        // Build nodes left running would hold the output pipes open after the command ends.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["UseSharedCompilation"] = "false";

        string command = $"{program} {string.Join(' ', arguments)} (in {workingDirectory})";
        using var process = Process.Start(start) ?? throw new Xunit.Sdk.XunitException($"could not start {command}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"{command} did not finish within {Timeout.TotalMinutes} minutes");
        }
        return new ProcessResult(command, process.ExitCode, await stdout, await stderr);
    }
}
