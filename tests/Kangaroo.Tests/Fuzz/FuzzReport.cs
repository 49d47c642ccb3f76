using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Kangaroo.Tests.Fuzz;

/// <summary>The knobs of a run: fixed in CI, overridable from the environment for long local runs and reruns.</summary>
internal sealed record FuzzSettings
{
    public const ulong DefaultSeed = 20251214;

    public ulong MasterSeed { get; init; } = DefaultSeed;
    public int CaseCount { get; init; } = MutationGenerator.DefaultCaseCount;
    public int CliCaseCount { get; init; } = 50;
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan Quarantine { get; init; } = TimeSpan.FromSeconds(60);
    public string? Family { get; init; }
    /// <summary>Explicit cases (family/seed) to run instead of the corpus.</summary>
    public IReadOnlyList<(string Family, long Seed)>? Cases { get; init; }
    public IReadOnlySet<string> Skip { get; init; } = new HashSet<string>();
    public bool KeepDirectories { get; init; }
    public string ReportDirectory { get; init; } = Path.Combine(AppContext.BaseDirectory, "fuzz");
    public ulong HeapLimitBytes { get; init; }
    /// <summary>KANGAROO_FUZZ_DRY=1: only generate and list the cases.</summary>
    public bool DryRun { get; init; }

    /// <summary>
    /// KANGAROO_FUZZ_SEED (master seed), KANGAROO_FUZZ_CASES (corpus size), KANGAROO_FUZZ_CLI_CASES, KANGAROO_FUZZ_TIMEOUT
    /// (seconds per case), KANGAROO_FUZZ_QUARANTINE (seconds to wait for a hung case), KANGAROO_FUZZ_FAMILY (one family),
    /// KANGAROO_FUZZ_CASE ("family/seed,family/seed": just these), KANGAROO_FUZZ_SKIP (same form), KANGAROO_FUZZ_KEEP=1
    /// (keep case directories), KANGAROO_FUZZ_REPORT (report folder), KANGAROO_FUZZ_HEAP_LIMIT_MB.
    /// </summary>
    public static FuzzSettings FromEnvironment()
    {
        static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
        static List<(string, long)> Ids(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(id => id.Split('/'))
            .Select(p => (p[0], long.Parse(p[1], CultureInfo.InvariantCulture))).ToList();
        var total = (ulong)GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        // Far above what a tiny model needs (< 200 MB), low enough that a runaway allocation fails within seconds.
        ulong defaultLimit = Math.Min(3UL << 30, total * 3 / 10);
        var s = new FuzzSettings
        {
            MasterSeed = Env("KANGAROO_FUZZ_SEED") is { } seed ? ulong.Parse(seed, CultureInfo.InvariantCulture) : DefaultSeed,
            CaseCount = Env("KANGAROO_FUZZ_CASES") is { } n ? int.Parse(n, CultureInfo.InvariantCulture) : MutationGenerator.DefaultCaseCount,
            CliCaseCount = Env("KANGAROO_FUZZ_CLI_CASES") is { } m ? int.Parse(m, CultureInfo.InvariantCulture) : 50,
            Timeout = TimeSpan.FromSeconds(Env("KANGAROO_FUZZ_TIMEOUT") is { } t ? double.Parse(t, CultureInfo.InvariantCulture) : 10),
            Quarantine = TimeSpan.FromSeconds(Env("KANGAROO_FUZZ_QUARANTINE") is { } q ? double.Parse(q, CultureInfo.InvariantCulture) : 60),
            Family = Env("KANGAROO_FUZZ_FAMILY"),
            Cases = Env("KANGAROO_FUZZ_CASE") is { } ids ? Ids(ids) : null,
            Skip = Env("KANGAROO_FUZZ_SKIP") is { } skip ? Ids(skip).Select(x => $"{x.Item1}/{x.Item2}").ToHashSet() : new HashSet<string>(),
            KeepDirectories = Env("KANGAROO_FUZZ_KEEP") == "1",
            DryRun = Env("KANGAROO_FUZZ_DRY") == "1",
            ReportDirectory = Env("KANGAROO_FUZZ_REPORT") ?? Path.Combine(AppContext.BaseDirectory, "fuzz"),
            HeapLimitBytes = Env("KANGAROO_FUZZ_HEAP_LIMIT_MB") is { } mb ? ulong.Parse(mb, CultureInfo.InvariantCulture) << 20 : defaultLimit,
        };
        return s;
    }

    public override string ToString() =>
        $"master seed {MasterSeed}, timeout {Timeout.TotalSeconds:F0} s per case, GC heap limit {HeapLimitBytes >> 20} MiB" +
        (Family is null ? "" : $", family {Family}") + (Cases is null ? "" : $", cases {string.Join(",", Cases.Select(c => $"{c.Family}/{c.Seed}"))}");
}

/// <summary>
/// Caps the GC heap while the fuzz runs (GCHeapHardLimit + GC.RefreshMemoryLimit), so that an absurd allocation
/// (a config with 10^8 layers on unfixed code) ends as an OutOfMemoryException in its case, not as the kernel's
/// OOM killer taking the test process — or a neighbour — down. The previous limit is restored afterwards.
/// </summary>
internal sealed class MemoryLimit : IDisposable
{
    private readonly object? _previous;

    private MemoryLimit(ulong bytes)
    {
        _previous = AppContext.GetData("GCHeapHardLimit");
        AppContext.SetData("GCHeapHardLimit", bytes);
        Refresh();
    }

    public static MemoryLimit Apply(ulong bytes) => new(bytes);

    private static void Refresh()
    {
        try
        {
            GC.Collect();
            GC.RefreshMemoryLimit();
        }
        catch (InvalidOperationException) { /* the heap is already above it: keep the old limit */ }
    }

    public void Dispose()
    {
        AppContext.SetData("GCHeapHardLimit", _previous ?? 0UL);
        Refresh();
    }
}

/// <summary>The figures of a run (per family and outcome), the failures by class, and the files they are written to.</summary>
internal sealed class FuzzReport
{
    private FuzzReport(string text, string failureSummary, int failures)
    {
        Text = text;
        FailureSummary = failureSummary;
        Failures = failures;
    }

    public string Text { get; }
    public string FailureSummary { get; }
    public int Failures { get; }

    public static FuzzReport Build(string mode, IReadOnlyList<CaseResult> results, TimeSpan elapsed, FuzzSettings settings, FuzzRunner runner, string reportDirectory)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(c, $"Kangaroo model-directory fuzz ({mode}): {results.Count} cases in {elapsed.TotalSeconds:F1} s; {settings}");
        sb.AppendLine(c, $"{"family",-20}{"cases",7}{"loaded",8}{"refused",9}{"hang",6}{"crash",7}{"other",7}{"FAILED",8}{"seconds",9}");
        foreach (var group in results.GroupBy(r => r.Case.Family).OrderBy(g => g.Key, StringComparer.Ordinal).Concat(results.GroupBy(_ => "total")))
        {
            int Count(string outcome) => group.Count(r => r.Outcome == outcome);
            int loaded = Count("loaded") + group.Count(r => r.Outcome == "exit 0");
            int refused = Count("refused") + group.Count(r => r.Outcome == "exit 2");
            int hang = Count("hang"), crash = Count("crash");
            int other = group.Count() - loaded - refused - hang - crash;
            sb.AppendLine(c, $"{group.Key,-20}{group.Count(),7}{loaded,8}{refused,9}{hang,6}{crash,7}{other,7}{group.Count(r => r.Failed),8}{group.Sum(r => r.Seconds),9:F1}");
        }
        sb.AppendLine(c, $"expectations: {results.Count(r => r.Case.Expect == Expectation.MustRefuse)} must refuse, {results.Count(r => r.Case.Expect == Expectation.MustLoad)} must load, {results.Count(r => r.Case.Expect == Expectation.Either)} either");
        var slowest = results.OrderByDescending(r => r.Seconds).Take(5).Select(r => $"{r.Case.Id} {r.Seconds:F2} s");
        sb.AppendLine(c, $"slowest: {string.Join(", ", slowest)}");
        if (runner.Leaked.Count > 0) sb.AppendLine(c, $"leaked threads (hung cases still running): {string.Join(", ", runner.Leaked)}");
        var notes = results.Where(r => r.Note is not null && !r.Failed).ToList();
        if (notes.Count > 0) sb.AppendLine(c, $"notes on passing cases: {notes.Count} (e.g. {notes[0].Case.Id}: {notes[0].Note})");

        var failed = results.Where(r => r.Failed).ToList();
        var summary = new StringBuilder();
        summary.AppendLine(c, $"{failed.Count} of {results.Count} fuzz cases ({mode}) failed. By class:");
        foreach (var cls in failed.GroupBy(r => r.ViolationClass!).OrderByDescending(g => g.Count()))
            summary.AppendLine(c, $"  {cls.Key} ({cls.Count()}): {string.Join(", ", cls.Take(12).Select(r => r.Case.Id))}{(cls.Count() > 12 ? ", …" : "")}");
        summary.AppendLine("Rerun one case alone with KANGAROO_FUZZ_CASE=family/seed. First failures:");
        foreach (var r in failed.Take(25)) summary.AppendLine(r.Describe());
        if (failed.Count > 0) sb.Append(summary);

        Directory.CreateDirectory(reportDirectory);
        string reportPath = Path.Combine(reportDirectory, $"fuzz-report-{mode}.txt");
        string failuresPath = Path.Combine(reportDirectory, $"fuzz-failures-{mode}.jsonl");
        var all = new StringBuilder(sb.ToString());
        all.AppendLine().AppendLine("All failures:");
        foreach (var r in failed) all.AppendLine(r.Describe());
        File.WriteAllText(reportPath, all.ToString());
        using (var writer = new StreamWriter(failuresPath))
        {
            foreach (var r in failed)
            {
                writer.WriteLine(JsonSerializer.Serialize(new
                {
                    id = r.Case.Id, family = r.Case.Family, seed = r.Case.Seed, @base = r.Case.Base.Name, mode = r.Mode, description = r.Case.Description,
                    expect = r.Case.Expect.ToString(), reason = r.Case.ExpectReason, outcome = r.Outcome, detail = r.Detail, @class = r.ViolationClass,
                    violation = r.Violation, note = r.Note, seconds = Math.Round(r.Seconds, 3),
                }));
            }
        }
        sb.AppendLine(c, $"report: {reportPath}; failures: {failuresPath}");
        summary.AppendLine(c, $"(all failures: {reportPath})");
        return new FuzzReport(sb.ToString(), summary.ToString(), failed.Count);
    }
}
