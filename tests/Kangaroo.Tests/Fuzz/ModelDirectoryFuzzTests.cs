using System.Diagnostics;
using Xunit;

namespace Kangaroo.Tests.Fuzz;

/// <summary>
/// Seeded, reproducible mutation fuzzing of model directories (issue 14): every case — a base model directory (tiny
/// random Llama, its sharded twin, its PyTorch-adapter twin, or the demo model) with one family's mutation — must end as
/// "loaded and generated" or as a documented <see cref="KangarooException"/> naming the file, tensor or field; never a
/// hang, a crash, another exception type, a silently accepted change of meaning, or pickle code run.
/// </summary>
/// <remarks>
/// <para>Families: <c>config</c>, <c>safetensors-header</c>, <c>weight-bytes</c>, <c>tokenizer-model</c>,
/// <c>tokenizer-config</c>, <c>generation-config</c>, <c>shard-index</c>, <c>adapter-config</c>, <c>adapter-weights</c>,
/// <c>adapter-pickle</c>, <c>odd-files</c> (see the Families.*.cs files). The rules a case is judged by are on
/// <see cref="FuzzRunner"/>; what must be refused (MustRefuse) is decided by the mutation and, for configs, by
/// <see cref="ConfigSemantics"/>.</para>
/// <para>Reproducing: the corpus is fixed by the master seed (KANGAROO_FUZZ_SEED, default <see cref="FuzzSettings.DefaultSeed"/>)
/// and size (KANGAROO_FUZZ_CASES, default 2000); every case is a pure function of (family, seed), printed with each
/// failure; <c>KANGAROO_FUZZ_CASE=config/3</c> reruns just that one. Past failures are pinned in <see cref="KnownFailures"/>.
/// Reports (per family and outcome, seconds) go to the test output and to bin/.../fuzz/fuzz-report-*.txt.</para>
/// </remarks>
[Collection(nameof(FuzzCollection))]
public sealed class ModelDirectoryFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryMutatedModelDirectoryLoadsOrIsRefusedWithADocumentedError()
    {
        var settings = FuzzSettings.FromEnvironment();
        var corpus = settings.Cases ?? MutationGenerator.Corpus(settings.MasterSeed, settings.CaseCount, settings.Family);
        var report = Run("api", corpus, settings, (runner, c, _) => runner.Run(c));
        Assert.True(report.Failures == 0, report.FailureSummary);
    }

    /// <summary>A sample of the corpus through <c>kangaroo generate</c> in-process: exit 0, or 2 with one clear message; never 1.</summary>
    [Fact]
    public void CliSampleExitsZeroOrTwoWithOneClearMessage()
    {
        var settings = FuzzSettings.FromEnvironment();
        var full = settings.Cases ?? MutationGenerator.Corpus(settings.MasterSeed, settings.CaseCount, settings.Family);
        // Round-robin over the families, each family's picks spread over its part of the corpus.
        int n = Math.Min(settings.CliCaseCount, full.Count);
        var byFamily = full.GroupBy(x => x.Family).Select(g => g.ToList()).ToList();
        var sample = new List<(string Family, long Seed)>();
        for (int round = 0; sample.Count < n; round++)
        {
            foreach (var cases in byFamily)
            {
                int index = (int)((3 + (long)round * 37) % cases.Count);
                if (sample.Count < n && !sample.Contains(cases[index])) sample.Add(cases[index]);
            }
            if (round > full.Count) break;
        }
        var report = Run("cli", sample, settings, (runner, c, i) =>
        {
            bool adapterCase = c.Target.StartsWith(FuzzBase.AdapterDirectory, StringComparison.Ordinal) || c.Family.StartsWith("adapter", StringComparison.Ordinal);
            return runner.RunCli(c, kangaroo: c.Base.AdapterWeights is not null && (adapterCase || i % 2 == 0));
        });
        Assert.True(report.Failures == 0, report.FailureSummary);
    }

    public static TheoryData<string, long, string> KnownFailureRows
    {
        get
        {
            var rows = new TheoryData<string, long, string>();
            foreach (var (family, seed, description) in KnownFailures.Cases) rows.Add(family, seed, description);
            return rows;
        }
    }

    /// <summary>Every failure the fuzz found, pinned: each must now pass, and must still be the same mutation.</summary>
    [Theory]
    [MemberData(nameof(KnownFailureRows))]
    public void PastFailureIsFixed(string family, long seed, string description)
    {
        var c = MutationGenerator.Create(family, seed);
        Assert.True(c.Description == description,
            $"{family}/{seed} is no longer the mutation it was (the generator changed): now \"{c.Description}\", pinned \"{description}\"");
        var settings = FuzzSettings.FromEnvironment();
        using var memory = MemoryLimit.Apply(settings.HeapLimitBytes);
        using var runner = new FuzzRunner(settings.Timeout, settings.Quarantine, null);
        var result = runner.Run(c);
        output.WriteLine(result.Describe());
        Assert.False(result.Failed, result.Describe());
    }

    private FuzzReport Run(string mode, IReadOnlyList<(string Family, long Seed)> corpus, FuzzSettings settings, Func<FuzzRunner, FuzzCase, int, CaseResult> run)
    {
        var clock = Stopwatch.StartNew();
        output.WriteLine($"bases written in {FuzzBases.Instance.CreationSeconds:F1} s (once per process)");
        Directory.CreateDirectory(settings.ReportDirectory);
        string progress = Path.Combine(settings.ReportDirectory, $"fuzz-progress-{mode}.txt");
        var results = new List<CaseResult>();
        using (MemoryLimit.Apply(settings.HeapLimitBytes))
        using (var runner = new FuzzRunner(settings.Timeout, settings.Quarantine, progress) { KeepDirectories = settings.KeepDirectories })
        {
            int i = 0;
            var harness = new List<string>();
            foreach (var (family, seed) in corpus)
            {
                if (settings.Skip.Contains($"{family}/{seed}")) continue;
                FuzzCase c;
                try
                {
                    c = MutationGenerator.Create(family, seed);
                }
                catch (Exception e)
                {
                    harness.Add($"{family}/{seed}: the generator failed: {e}");
                    continue;
                }
                if (settings.DryRun)
                {
                    output.WriteLine($"{c.Id} [{c.Base.Name}] {c.Expect}: {c.Description}");
                    continue;
                }
                var result = run(runner, c, i++);
                // The report needs the case's description, not the bytes it wrote (a long run would hold gigabytes).
                results.Add(result with { Case = c.WithoutContent() });
            }
            Assert.True(harness.Count == 0, string.Join("\n", harness));
            var report = FuzzReport.Build(mode, results, clock.Elapsed, settings, runner, settings.ReportDirectory);
            output.WriteLine(report.Text);
            var changed = FuzzBases.Instance.ChangedFiles();
            Assert.True(changed.Count == 0, $"base files were modified by a case (a write went through a link): {string.Join(", ", changed)}");
            return report;
        }
    }
}

/// <summary>
/// The fuzz runs alone: it caps the GC heap for its duration (see <see cref="MemoryLimit"/>), and its time limits
/// assume no other test competes for the two cores.
/// </summary>
[CollectionDefinition(nameof(FuzzCollection), DisableParallelization = true)]
public sealed class FuzzCollection;
