using System.Text.Json.Nodes;
using Xunit;

namespace Kangaroo.Tests.CommandLine;

/// <summary>What one in-process run of the <c>kangaroo</c> command gave.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Non-empty lines of standard error.</summary>
    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>Runs <c>Kangaroo.Cli.Cli.Run</c> in-process with captured streams, and the assertions the CLI promises.</summary>
public static class CliRunner
{
    public static CliResult Run(params string[] args) => RunWithInput(null, args);

    public static CliResult RunWithInput(string? stdin, params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = Kangaroo.Cli.Cli.Run(args, stdout, stderr, new StringReader(stdin ?? ""));
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Exit 0, nothing that looks like an error.</summary>
    public static CliResult AssertSuccess(CliResult r)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("error", r.Stderr, StringComparison.OrdinalIgnoreCase);
        return r;
    }

    /// <summary>
    /// Exit 2 with one clear message on standard error that contains every key phrase, no stack trace, nothing on
    /// standard output.
    /// </summary>
    public static CliResult AssertBadInput(CliResult r, params string[] keyPhrases)
    {
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.StartsWith("kangaroo: ", r.Stderr);
        foreach (string phrase in keyPhrases)
            Assert.True(r.Stderr.Contains(phrase, StringComparison.Ordinal), $"stderr lacks \"{phrase}\":\n{r}");
        AssertNoStackTrace(r);
        Assert.DoesNotContain("internal error", r.Stderr, StringComparison.Ordinal);
        Assert.Equal("", r.Stdout);
        return r;
    }

    public static void AssertNoStackTrace(CliResult r)
    {
        Assert.False(r.Stderr.Contains("   at ", StringComparison.Ordinal), $"stack trace without --verbose:\n{r}");
        Assert.False(r.Stderr.Contains("Exception", StringComparison.Ordinal), $"exception type name in a user message:\n{r}");
    }

    /// <summary>Edits a model's config.json as JSON.</summary>
    public static void EditConfig(string modelDirectory, Action<JsonObject> edit)
    {
        string path = Path.Combine(modelDirectory, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }
}
