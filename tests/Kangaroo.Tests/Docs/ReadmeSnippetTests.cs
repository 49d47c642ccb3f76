using System.Diagnostics;
using System.Reflection;
using System.Runtime.Loader;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace Kangaroo.Tests.Docs;

/// <summary>
/// The snippet tests set the process's current directory and console output: nothing else may run meanwhile.
/// </summary>
[CollectionDefinition("README snippets", DisableParallelization = true)]
public sealed class ReadmeSnippetCollection;

/// <summary>
/// Every <c>```csharp</c> block of the repository's README.md is a complete console program (top-level statements) that
/// runs from the repository root: each is compiled with Roslyn as a <c>dotnet new console</c> project would compile it
/// (its implicit global usings, nullable enabled, warnings count as failures) against this process's assemblies (the
/// framework and the Kangaroo libraries), then run with the repository root as the current directory, so its
/// <c>models/demo</c> is the real demo model.
/// </summary>
[Collection("README snippets")]
public sealed partial class ReadmeSnippetTests
{
    /// <summary>The global usings of a console project with ImplicitUsings enabled (Microsoft.NET.Sdk).</summary>
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    [Fact]
    public async Task EveryCSharpBlockOfTheReadmeCompilesAndRunsFromTheRepositoryRoot()
    {
        string root = RepositoryRoot();
        var blocks = CSharpBlocks(File.ReadAllText(Path.Combine(root, "README.md")));
        Assert.NotEmpty(blocks);
        foreach (var (line, code) in blocks)
        {
            byte[]? image = Compile(code, $"README.md:{line}", out var errors);
            Assert.True(image is not null, $"the C# block at README.md line {line} does not compile:\n{string.Join("\n", errors)}");

            var (output, elapsed) = await RunAsync(image, root, $"README.md line {line}");
            TestContext.Current.TestOutputHelper?.WriteLine($"--- README.md line {line}: ran in {elapsed.TotalSeconds:F1} s ---\n{output}");
            Assert.False(string.IsNullOrWhiteSpace(output), $"the C# block at README.md line {line} printed nothing");
        }
    }

    /// <summary>The harness itself: the README's old snippet (KangarooOptions without its namespace) is rejected.</summary>
    [Fact]
    public void AProgramThatDoesNotCompileIsReportedWithItsDiagnostics()
    {
        const string code = """
            using Kangaroo;
            using Kangaroo.Generation;

            var options = new GenerationOptions { Speculation = new KangarooOptions() };
            Console.WriteLine(options.MaxNewTokens);
            """;
        Assert.Null(Compile(code, "broken.cs", out var errors));
        Assert.Contains(errors, e => e.Contains("CS0246", StringComparison.Ordinal) && e.Contains("KangarooOptions", StringComparison.Ordinal));
    }

    /// <summary>The folder holding Kangaroo.Native.sln, walking up from the test program's directory.</summary>
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kangaroo.Native.sln"))) return dir.FullName;
        throw new Xunit.Sdk.XunitException($"no Kangaroo.Native.sln above {AppContext.BaseDirectory}: the README is not at hand");
    }

    /// <summary>(1-based line of the block's first code line, code) of every ```csharp block.</summary>
    private static List<(int Line, string Code)> CSharpBlocks(string markdown)
    {
        markdown = markdown.Replace("\r\n", "\n");
        var blocks = new List<(int, string)>();
        foreach (Match m in CSharpBlock().Matches(markdown))
        {
            int line = markdown.AsSpan(0, m.Groups["code"].Index).Count('\n') + 1;
            blocks.Add((line, m.Groups["code"].Value));
        }
        return blocks;
    }

    [GeneratedRegex(@"^```csharp[ \t]*\n(?<code>.*?)^```[ \t]*$", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();

    /// <summary>The compiled program's image, or null with the errors and warnings (as the compiler prints them).</summary>
    private static byte[]? Compile(string code, string path, out List<string> errors)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = new[]
        {
            CSharpSyntaxTree.ParseText(code, parse, path),
            CSharpSyntaxTree.ParseText(ImplicitUsings, parse, "GlobalUsings.g.cs"),
        };
        var options = new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable)
            // As the SDK does: version unification between referenced assemblies is no warning.
            .WithSpecificDiagnosticOptions(new Dictionary<string, ReportDiagnostic>
            {
                ["CS1701"] = ReportDiagnostic.Suppress,
                ["CS1702"] = ReportDiagnostic.Suppress,
            });
        var compilation = CSharpCompilation.Create($"ReadmeSnippet{Guid.NewGuid():N}", trees, References(), options);
        using var image = new MemoryStream();
        var result = compilation.Emit(image);
        errors = result.Diagnostics
            .Where(d => d.Severity is DiagnosticSeverity.Error or DiagnosticSeverity.Warning)
            .Select(d => d.ToString())
            .ToList();
        return result.Success && errors.Count == 0 ? image.ToArray() : null;
    }

    /// <summary>
    /// The framework and the test program's own assemblies (TRUSTED_PLATFORM_ASSEMBLIES: the Kangaroo libraries among
    /// them) plus any other assembly loaded from a file, each file name once.
    /// </summary>
    private static List<MetadataReference> References()
    {
        var paths = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string tpa = AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string ?? "";
        foreach (string path in tpa.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            paths.TryAdd(Path.GetFileName(path), path);
        foreach (var loaded in AppDomain.CurrentDomain.GetAssemblies())
            if (!loaded.IsDynamic && loaded.Location.Length > 0) paths.TryAdd(Path.GetFileName(loaded.Location), loaded.Location);
        Assert.Contains("Kangaroo.Core.dll", paths.Keys);
        return paths.Values.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }

    /// <summary>
    /// Loads the program into a collectible load context (its references resolve to this process's assemblies) and runs
    /// its entry point (awaiting it when it is asynchronous) in <paramref name="directory"/> with its console output
    /// captured; the current directory and console are restored and the context unloaded afterwards. Returns the output
    /// and the time it took; a program that throws fails the test with its output so far.
    /// </summary>
    private static async Task<(string Output, TimeSpan Elapsed)> RunAsync(byte[] image, string directory, string name)
    {
        var context = new AssemblyLoadContext("README snippet", isCollectible: true);
        try
        {
            return await RunAsync(context.LoadFromStream(new MemoryStream(image)), directory, name);
        }
        finally
        {
            context.Unload();
        }
    }

    private static async Task<(string Output, TimeSpan Elapsed)> RunAsync(Assembly program, string directory, string name)
    {
        var entry = program.EntryPoint ?? throw new Xunit.Sdk.XunitException($"{name}: no entry point");
        // Top-level statements with await: the entry point blocks on the generated async <Main>$; call that one instead.
        var main = entry.DeclaringType?.GetMethod("<Main>$", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public) ?? entry;
        object?[]? arguments = main.GetParameters().Length == 0 ? null : [Array.Empty<string>()];

        var output = new StringWriter { NewLine = "\n" };
        var previousOut = Console.Out;
        string previousDirectory = Environment.CurrentDirectory;
        var clock = Stopwatch.StartNew();
        try
        {
            Environment.CurrentDirectory = directory;
            Console.SetOut(output);
            object? returned = main.Invoke(null, arguments);
            if (returned is Task task) await task;
        }
        catch (Exception e)
        {
            var error = e is TargetInvocationException { InnerException: { } inner } ? inner : e;
            throw new Xunit.Sdk.XunitException($"{name} threw {error}\n--- its output ---\n{output}");
        }
        finally
        {
            Console.SetOut(previousOut);
            Environment.CurrentDirectory = previousDirectory;
        }
        return (output.ToString(), clock.Elapsed);
    }
}
