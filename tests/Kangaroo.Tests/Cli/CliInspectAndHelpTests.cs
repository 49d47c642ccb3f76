using System.Globalization;
using Kangaroo.Tests.TinyModels;
using Kangaroo.Weights;
using Xunit;
using static Kangaroo.Tests.CommandLine.CliRunner;

namespace Kangaroo.Tests.CommandLine;

public sealed class CliInspectTests
{
    [Fact]
    public void ShowsParametersDTypesAndMemoryByComponent()
    {
        using var dir = new TestDirectory("cli-inspect");
        var tiny = TestModels.Write(dir.Path, TestModels.Spec(layers: 2) with { DType = DType.F16 });
        long parameters = tiny.Shapes.Values.Sum(s => s.Aggregate(1L, (a, b) => a * b));
        var r = AssertSuccess(Run("inspect", "--model", dir.Path));
        Assert.Equal("", r.Stderr);
        string o = r.Stdout;
        Assert.Contains("type:        llama, 2 layers, hidden 32, ffn 64, vocab 1500", o);
        Assert.Contains("attention:   4 heads, 2 kv heads (GQA), head dim 8", o);
        Assert.Contains($"parameters:  {parameters.ToString("N0", CultureInfo.InvariantCulture)} (", o);
        Assert.Contains("dtypes:      F16 (21 tensors); config says float16", o);
        Assert.Contains("memory by component:", o);
        // Embedding and LM head: 1500 × 32 F16 values each = 93.75 KiB; per-layer components summed over both layers.
        Assert.Matches(@"\n  embedding +93\.8 KiB +48,000 parameters\n", o);
        Assert.Matches(@"\n  lm head +93\.8 KiB +48,000 parameters\n", o);
        Assert.Matches(@"\n  attention +\d+\.\d KiB +6,144 parameters\n", o);
        Assert.Matches(@"\n  mlp +\d+\.\d KiB +12,288 parameters\n", o);
        Assert.Matches(@"\n  norms +\d+ B +160 parameters\n", o);
        Assert.Matches($@"\n  total +{(parameters * 2 / 1024.0).ToString("F1", CultureInfo.InvariantCulture).Replace(".", "\\.")} KiB\n", o);
        Assert.Contains("kv cache:", o);
        Assert.Contains("files:       model.safetensors (", o);
        Assert.DoesNotContain("unused:", o);
    }

    [Fact]
    public void TensorsTheConfigDoesNotUse_AreRefusedByInspectToo()
    {
        using var dir = new TestDirectory("cli-inspect");
        TestModels.Write(dir.Path, TestModels.Spec(layers: 2));
        EditConfig(dir.Path, c => c["tie_word_embeddings"] = true); // lm_head.weight would be left unused
        AssertBadInput(Run("inspect", "--model", dir.Path), "config.json", "tie_word_embeddings is true", "lm_head.weight");
    }

    [Fact]
    public void InspectNeedsNoTokenizer()
    {
        using var dir = new TestDirectory("cli-inspect");
        TinyModelFactory.Write(TinyModelSpec.Mqa, dir.Path);
        var r = AssertSuccess(Run("inspect", "--model", dir.Path));
        Assert.Contains("1 kv heads (MQA)", r.Stdout);
    }
}

public sealed class CliHelpTests
{
    [Fact]
    public void TopLevelHelp()
    {
        foreach (string flag in new[] { "--help", "-h", "help" })
        {
            var r = AssertSuccess(Run(flag));
            Assert.Contains("Usage: kangaroo <command>", r.Stdout);
            Assert.Contains("generate", r.Stdout);
            Assert.Contains("inspect", r.Stdout);
            Assert.Equal("", r.Stderr);
        }
    }

    [Theory]
    [InlineData("generate", "--kangaroo")]
    [InlineData("inspect", "--model DIR")]
    public void CommandHelp(string command, string mentions)
    {
        foreach (string flag in new[] { "--help", "-h" })
        {
            var r = AssertSuccess(Run(command, flag));
            Assert.Contains($"Usage: kangaroo {command}", r.Stdout);
            Assert.Contains(mentions, r.Stdout);
            Assert.Equal("", r.Stderr);
        }
    }

    [Fact]
    public void HelpNeedsNoModel()
    {
        // --help wins over options that would fail, except unknown ones.
        Assert.Equal(0, Run("generate", "--model", "/no/such/dir", "--help").ExitCode);
    }

    [Fact]
    public void NoArgumentsPrintsUsageAndExits2()
    {
        var r = Run();
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("Usage: kangaroo <command>", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Version()
    {
        var r = AssertSuccess(Run("--version"));
        Assert.Matches(@"^\d+\.\d+\.\d+\S*\n$", r.Stdout);
    }
}
