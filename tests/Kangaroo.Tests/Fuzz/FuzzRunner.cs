using System.Diagnostics;
using System.Text.RegularExpressions;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Speculative;

namespace Kangaroo.Tests.Fuzz;

/// <summary>What one case ended as, and whether that breaks the rules (then <see cref="Violation"/> says how).</summary>
internal sealed record CaseResult(FuzzCase Case, string Mode, string Outcome, string Detail, double Seconds)
{
    /// <summary>Null when the case passed; else the defect class ("hang", "silently-accepted", "undocumented-exception:IOException"...).</summary>
    public string? ViolationClass { get; init; }
    public string? Violation { get; init; }
    /// <summary>Something worth knowing that is not a failure (Kangaroo tokens differing from vanilla, what a hung case did later).</summary>
    public string? Note { get; init; }
    public bool Failed => ViolationClass is not null;

    public string Describe() =>
        $"{Case.Id} [{Case.Base.Name}, {Mode}] {Case.Description}\n    expected: {Case.Expect}{(Case.ExpectReason is null ? "" : $" ({Case.ExpectReason})")}\n" +
        $"    outcome:  {Outcome}: {Detail} ({Seconds:F2} s)" + (Violation is null ? "" : $"\n    FAILURE [{ViolationClass}]: {Violation}") +
        (Note is null ? "" : $"\n    note: {Note}");
}

/// <summary>
/// Runs cases, each on its own background thread under a time limit: a case that does not finish is recorded as a hang
/// and left behind (a .NET thread cannot be killed); pipes it may be blocked on are opened for writing so that it
/// wakes, and the next case waits a while for it to end (so that what it allocates does not fail the next one).
/// </summary>
/// <remarks>
/// <para>A case passes when it ends in one of two ways:</para>
/// <list type="number">
/// <item><b>Loaded and generated</b>: <c>LanguageModel.Load</c> (CPU backend), then 3 greedy tokens, and 3 more with
/// Kangaroo when an adapter loaded; every token id inside the vocabulary. Not allowed for MustRefuse cases.</item>
/// <item><b>A documented refusal</b>: a <see cref="KangarooException"/> (or any subclass, siblings the loader may add
/// included) that names the problem — the rule below. Not allowed for MustLoad cases.</item>
/// </list>
/// <para>"Names the file, tensor or field" is checked as follows:</para>
/// <list type="bullet">
/// <item>The message is not empty and holds no stack trace ("   at " lines); no OutOfMemoryException,
/// InsufficientExecutionStackException or access violation appears anywhere in its inner exceptions.</item>
/// <item><see cref="ModelFormatException"/>: <c>Path</c> is an absolute path inside the case's model directory, and is a
/// file path (existing or not). A <c>Path</c> that is a directory is accepted only when the mutation is about that
/// directory itself, or a mutated file in it is no longer there as a readable file (deleted, dangling link, loop,
/// a directory in its place) and the message names it. Otherwise it is a failure of class "message-path-is-directory": the message must name the file
/// (e.g. "the tokenizer has 1501 tokens but config.json's vocab_size is 1500" must have config.json, or tokenizer.model, as its Path).</item>
/// <item>Any other <see cref="KangarooException"/> thrown while loading: the message contains a path inside the model
/// directory, the name of a model-directory file (config.json, model.safetensors, ...), a tensor name of the
/// checkpoint or of the mutation, or a config field name (a key of the base JSON files or one the mutation touched)
/// as a whole word. An <see cref="InvalidRequestException"/> during generation (about the request itself) is accepted as is.</item>
/// </list>
/// <para>Anything else fails: another exception type (class "undocumented-exception:Type"), a crash ("crash:Type"),
/// no end within the time limit ("hang"), a MustRefuse case that loads ("silently-accepted"), a MustLoad case that
/// throws ("refused-harmless-change"), a pickle whose code ran (its marker file exists: "pickle-code-executed").</para>
/// </remarks>
internal sealed class FuzzRunner : IDisposable
{
    public const string Prompt = "def add(a, b):";

    private readonly TestDirectory _root = new("fuzz-run");
    private readonly CpuBackend _backend = new();
    private readonly string _blobs;
    private readonly List<string> _leaked = [];
    private readonly List<CaseDirectory> _leakedDirectories = [];
    private readonly List<Thread> _leakedThreads = [];
    private int _counter;

    public FuzzRunner(TimeSpan timeout, TimeSpan quarantine, string? progressFile)
    {
        Timeout = timeout;
        Quarantine = quarantine;
        ProgressFile = progressFile;
        _blobs = _root.CreateSubdirectory("blobs");
        Directory.CreateDirectory(AdapterPickleFamily.MarkerDirectory);
    }

    public TimeSpan Timeout { get; }
    public TimeSpan Quarantine { get; }
    public string? ProgressFile { get; }
    public bool KeepDirectories { get; init; }
    public IReadOnlyList<string> Leaked => _leaked;

    private sealed class Box
    {
        public volatile bool Done;
        public string Outcome = "";
        public string Phase = "";
        public string Detail = "";
        public Exception? Error;
        public int ExitCode;
        public string Stderr = "";
        public string? Note;
    }

    public CaseResult Run(FuzzCase c) => Execute(c, "api", (box, dir) => RunApi(box, dir));

    /// <summary>The case through <c>kangaroo generate</c> in-process: exit 0, or 2 with one clear message (never 1).</summary>
    public CaseResult RunCli(FuzzCase c, bool kangaroo) => Execute(c, kangaroo ? "cli --kangaroo" : "cli", (box, dir) => RunCli(box, dir, kangaroo));

    private CaseResult Execute(FuzzCase c, string mode, Action<Box, string> body)
    {
        string dir = Path.Combine(_root.Path, $"c{Interlocked.Increment(ref _counter):D5}");
        if (ProgressFile is not null) File.WriteAllText(ProgressFile, $"{c.Id} {mode} {c.Description}\n");
        var clock = Stopwatch.StartNew();
        CaseDirectory cd;
        try
        {
            cd = CaseDirectory.Create(dir, c, _blobs);
        }
        catch (Exception e)
        {
            return new CaseResult(c, mode, "harness-error", $"could not build the case directory: {e}", 0)
            { ViolationClass = "harness-error", Violation = e.Message };
        }
        var box = new Box();
        var thread = new Thread(() =>
        {
            try { body(box, dir); }
            catch (Exception e) { box.Error ??= e; box.Outcome = "escaped"; }
            finally { box.Done = true; }
        }, maxStackSize: 16 << 20) { IsBackground = true, Name = $"fuzz {c.Id}" };
        thread.Start();
        bool finished = thread.Join(Timeout);
        double seconds = clock.Elapsed.TotalSeconds;
        CaseResult result;
        if (!finished)
        {
            // Wake threads blocked opening a pipe, then give the case a while to end before the next one starts.
            var wait = Stopwatch.StartNew();
            int released = 0;
            while (!box.Done && wait.Elapsed < Quarantine)
            {
                released += cd.ReleaseFifos();
                thread.Join(50);
            }
            string later = box.Done
                ? $"it ended {wait.Elapsed.TotalSeconds:F1} s after the limit{(released > 0 ? $" once its FIFO was opened for writing ({released}×)" : "")}, as: {Summary(box)}"
                : $"still running {Quarantine.TotalSeconds:F0} s after the limit (thread leaked)";
            if (!box.Done)
            {
                lock (_leaked) _leaked.Add(c.Id);
                _leakedDirectories.Add(cd);
                _leakedThreads.Add(thread);
            }
            result = new CaseResult(c, mode, "hang", $"no result within {Timeout.TotalSeconds:F0} s (phase: {box.Phase})", seconds)
            {
                ViolationClass = mode == "api" ? "hang" : "cli-hang",
                Violation = $"did not finish within {Timeout.TotalSeconds:F0} s; {later}",
                Note = later,
            };
        }
        else
        {
            result = mode == "api" ? ClassifyApi(c, cd, box, seconds) : ClassifyCli(c, cd, box, seconds, mode.EndsWith("kangaroo", StringComparison.Ordinal));
        }
        if (c.Marker is not null && (File.Exists(c.Marker) || Directory.Exists(c.Marker)))
            result = result with { ViolationClass = "pickle-code-executed", Violation = $"the pickle's payload ran: {c.Marker} exists" };
        if (Directory.EnumerateFileSystemEntries(AdapterPickleFamily.MarkerDirectory).Any())
            result = result with { ViolationClass = "pickle-code-executed", Violation = $"a payload ran: {string.Join(", ", Directory.EnumerateFileSystemEntries(AdapterPickleFamily.MarkerDirectory))}" };
        // A case that failed while an earlier hung case still ran may have been starved of memory or CPU by it.
        var alive = _leakedThreads.Where(t => t != thread && t.IsAlive).Select(t => t.Name).ToList();
        if (result.Failed && alive.Count > 0)
            result = result with { Note = (result.Note is null ? "" : result.Note + "; ") + $"while leaked case(s) still ran: {string.Join(", ", alive)} (the failure may be theirs)" };
        // A leaked case keeps its directory until the end, so that its pipes can still be opened to release it.
        if (!KeepDirectories && !_leakedDirectories.Contains(cd)) cd.Delete();
        return result;
    }

    private void RunApi(Box box, string dir)
    {
        box.Phase = "load";
        try
        {
            using var model = LanguageModel.Load(dir, new ModelLoadOptions { Backend = _backend });
            box.Phase = "generate";
            var options = new GenerationOptions { MaxNewTokens = 3, StopAtEndOfSequence = false };
            var vanilla = model.Generate(Prompt, options);
            CheckTokens(vanilla, model);
            string detail = $"loaded ({model.Config.NumLayers} layers, vocab {model.Config.VocabSize}), generated {vanilla.TokenIds.Count} tokens";
            if (model.Adapter is not null)
            {
                box.Phase = "generate with Kangaroo";
                var kangaroo = model.Generate(Prompt, options with { Speculation = new KangarooOptions() });
                CheckTokens(kangaroo, model);
                detail += " without and with Kangaroo";
                if (!kangaroo.TokenIds.SequenceEqual(vanilla.TokenIds))
                    box.Note = $"Kangaroo greedy gave [{string.Join(", ", kangaroo.TokenIds)}], vanilla [{string.Join(", ", vanilla.TokenIds)}]";
            }
            else
            {
                detail += " (no adapter loaded)";
            }
            box.Outcome = "loaded";
            box.Detail = detail;
        }
        catch (Exception e)
        {
            box.Outcome = "threw";
            box.Error = e;
        }
    }

    private static void CheckTokens(GenerationResult r, LanguageModel model)
    {
        foreach (int id in r.TokenIds)
            if (id < 0 || id >= model.Config.VocabSize)
                throw new InvalidTokenException($"generated token id {id} is outside the vocabulary [0, {model.Config.VocabSize})");
    }

    private sealed class InvalidTokenException(string message) : Exception(message);

    private void RunCli(Box box, string dir, bool kangaroo)
    {
        box.Phase = "cli";
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        string[] args = kangaroo
            ? ["generate", "--model", dir, "--backend", "cpu", "--max-tokens", "2", "--kangaroo", "hi"]
            : ["generate", "--model", dir, "--backend", "cpu", "--max-tokens", "2", "hi"];
        box.ExitCode = Kangaroo.Cli.Cli.Run(args, stdout, stderr, new StringReader(""));
        box.Stderr = stderr.ToString();
        box.Outcome = "exited";
    }

    private static string Summary(Box box) => box.Outcome switch
    {
        "loaded" => box.Detail,
        "exited" => $"exit {box.ExitCode}",
        _ => box.Error is null ? box.Outcome : $"{box.Error.GetType().Name}: {Trim(box.Error.Message)}",
    };

    private static readonly Type[] CrashTypes = [typeof(OutOfMemoryException), typeof(InsufficientExecutionStackException), typeof(AccessViolationException), typeof(StackOverflowException)];

    private CaseResult ClassifyApi(FuzzCase c, CaseDirectory cd, Box box, double seconds)
    {
        if (box.Outcome == "loaded")
        {
            var loaded = new CaseResult(c, "api", "loaded", box.Detail, seconds) { Note = box.Note };
            return c.Expect == Expectation.MustRefuse
                ? loaded with { ViolationClass = "silently-accepted", Violation = $"loaded and generated, but must be refused: {c.ExpectReason}" }
                : loaded;
        }
        var e = box.Error!;
        string detail = $"{box.Phase}: {e.GetType().FullName}: {Clean(e.Message, cd)}";
        var crash = Chain(e).FirstOrDefault(x => CrashTypes.Contains(x.GetType()));
        if (crash is not null)
        {
            string how = crash == e ? "" : $" (wrapped in {e.GetType().Name})";
            return new CaseResult(c, "api", "crash", detail, seconds) { ViolationClass = $"crash:{crash.GetType().Name}", Violation = $"{crash.GetType().Name}{how}: {Trim(crash.Message)}" };
        }
        if (e is InvalidTokenException)
            return new CaseResult(c, "api", "error", detail, seconds) { ViolationClass = "invalid-token", Violation = e.Message };
        if (e is not KangarooException ke)
        {
            return new CaseResult(c, "api", "error", detail + StackTop(e), seconds)
            { ViolationClass = $"undocumented-exception:{e.GetType().Name}", Violation = $"{e.GetType().FullName} is not a KangarooException" };
        }
        var refused = new CaseResult(c, "api", "refused", detail, seconds);
        if (c.Expect == Expectation.MustLoad)
            return refused with { ViolationClass = "refused-harmless-change", Violation = "a harmless change must load and generate" };
        string? problem = NamingProblem(ke, c, cd, box.Phase);
        return problem is null ? refused : refused with { ViolationClass = problem.Split(':')[0], Violation = problem };
    }

    private CaseResult ClassifyCli(FuzzCase c, CaseDirectory cd, Box box, double seconds, bool kangaroo)
    {
        string mode = kangaroo ? "cli --kangaroo" : "cli";
        if (box.Outcome != "exited")
        {
            var e = box.Error!;
            return new CaseResult(c, mode, "error", $"Cli.Run threw {e.GetType().FullName}: {Clean(e.Message, cd)}", seconds)
            { ViolationClass = $"cli-threw:{e.GetType().Name}", Violation = "Cli.Run must not throw" };
        }
        string stderr = Clean(box.Stderr, cd);
        string first = stderr.Split('\n').FirstOrDefault(l => l.Length > 0) ?? "";
        var result = new CaseResult(c, mode, $"exit {box.ExitCode}", first.Length > 0 ? first : "(nothing on stderr)", seconds);
        // An adapter mutation only matters to the CLI when it loads the adapter (--kangaroo).
        bool adapterCase = c.Target.StartsWith(FuzzBase.AdapterDirectory, StringComparison.Ordinal) || c.Family.StartsWith("adapter", StringComparison.Ordinal);
        switch (box.ExitCode)
        {
            case 0:
                if (c.Expect == Expectation.MustRefuse && (kangaroo || !adapterCase))
                    return result with { ViolationClass = "cli-silently-accepted", Violation = $"exit 0, but must be refused: {c.ExpectReason}" };
                return result;
            case 2:
                var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                if (!stderr.StartsWith("kangaroo: ", StringComparison.Ordinal))
                    return result with { ViolationClass = "cli-bad-message", Violation = "stderr does not start with \"kangaroo: \"" };
                if (lines.Any(l => l.StartsWith("   at ", StringComparison.Ordinal)))
                    return result with { ViolationClass = "cli-stack-trace", Violation = "a stack trace on stderr" };
                if (Regex.IsMatch(stderr, @"\b[A-Z][A-Za-z]*Exception\b"))
                    return result with { ViolationClass = "cli-exception-name", Violation = "an exception type name in the user message" };
                if (lines.Length > 2)
                    return result with { ViolationClass = "cli-bad-message", Violation = $"{lines.Length} lines on stderr (one message expected)" };
                return result;
            default:
                return result with { ViolationClass = $"cli-exit-{box.ExitCode}", Violation = $"exit {box.ExitCode} (0 or 2 expected): {first}" };
        }
    }

    /// <summary>The "names the file, tensor or field" rule (see the class remarks); null when it holds.</summary>
    private static string? NamingProblem(KangarooException e, FuzzCase c, CaseDirectory cd, string phase)
    {
        string message = e.Message;
        if (string.IsNullOrWhiteSpace(message)) return "message-empty: the exception has no message";
        if (message.Contains("\n   at ", StringComparison.Ordinal)) return "message-stack-trace: the message holds a stack trace";
        string root = Path.GetFullPath(cd.Path);
        bool Inside(string p) => p == root || p.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        if (e is ModelFormatException mfe)
        {
            if (string.IsNullOrEmpty(mfe.Path) || !Path.IsPathRooted(mfe.Path))
                return $"message-path-invalid: Path \"{mfe.Path}\" is not an absolute path";
            string path = Path.GetFullPath(mfe.Path);
            if (!Inside(path)) return $"message-path-outside: Path {path} is outside the model directory";
            if (Directory.Exists(path))
            {
                // Entries the case changed: the folder itself may be what the message is about, or hold a mutated file
                // that is no longer a readable file (deleted, a dangling link or loop, a directory) and that it names.
                var changed = c.Ops.Select(o => Path.GetFullPath(cd.Full(o.Path))).Append(Path.GetFullPath(cd.Full(c.Target))).Distinct().ToList();
                bool aboutIt = changed.Contains(path);
                bool namesGoneFile = changed.Any(t => Path.GetDirectoryName(t) == path && Native.EntryType(t) is null or "directory"
                                                      && message.Contains(Path.GetFileName(t), StringComparison.Ordinal));
                if (!aboutIt && !namesGoneFile)
                {
                    string rel = Path.GetRelativePath(root, path);
                    return $"message-path-is-directory: Path is the directory {(rel == "." ? "<model dir>" : rel)}, not the file at fault (mutated: {c.Target})";
                }
            }
            return null;
        }
        if (phase != "load" && e is InvalidRequestException) return null;
        if (message.Contains(root, StringComparison.Ordinal)) return null;
        if (FuzzBases.KnownFileNames.Any(f => message.Contains(f, StringComparison.Ordinal))) return null;
        if (c.Base.Files.Any(f => message.Contains(Path.GetFileName(f), StringComparison.Ordinal))) return null;
        var tensors = c.Base.ModelTensors.Concat(c.Base.AdapterTensors).Concat(c.Fields);
        if (tensors.Any(t => t.Length > 0 && message.Contains(t, StringComparison.Ordinal))) return null;
        if (FuzzBases.Instance.FieldNames.Concat(c.Fields).Any(f => f.Length > 0 && Regex.IsMatch(message, $@"(?<![\w.]){Regex.Escape(f)}(?![\w])"))) return null;
        return $"message-names-nothing: a {e.GetType().Name} that names no file, tensor or field";
    }

    private static IEnumerable<Exception> Chain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            yield return x;
            if (x is AggregateException a)
                foreach (var inner in a.InnerExceptions)
                    foreach (var y in Chain(inner))
                        yield return y;
        }
    }

    private static string StackTop(Exception e)
    {
        var frames = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("at ", StringComparison.Ordinal)).Take(3);
        string s = string.Join(" | ", frames);
        return s.Length == 0 ? "" : $" [{s}]";
    }

    private string Clean(string text, CaseDirectory cd)
    {
        text = text.Replace(cd.Path, "<dir>", StringComparison.Ordinal).Replace(_blobs, "<blobs>", StringComparison.Ordinal);
        foreach (var b in FuzzBases.Instance.All) text = text.Replace(b.Directory, $"<base:{b.Name}>", StringComparison.Ordinal);
        text = text.Replace(AdapterPickleFamily.MarkerDirectory, "<markers>", StringComparison.Ordinal);
        return Trim(text);
    }

    private static string Trim(string s)
    {
        s = s.Replace("\r", "").TrimEnd();
        return s.Length <= 500 ? s : s[..500] + "…";
    }

    public void Dispose()
    {
        // Last chance for threads still blocked opening a case's pipe: open the write ends so that they return.
        for (int round = 0; round < 20 && _leakedDirectories.Count > 0; round++)
        {
            foreach (var cd in _leakedDirectories) cd.ReleaseFifos();
            Thread.Sleep(10);
        }
        _backend.Dispose();
        // Leaked case threads may still hold files open; deleting the folder is fine on Linux.
        _root.Dispose();
        // The marker folder stays only when a payload ran (the evidence).
        try
        {
            if (Directory.Exists(AdapterPickleFamily.MarkerDirectory) && !Directory.EnumerateFileSystemEntries(AdapterPickleFamily.MarkerDirectory).Any())
                Directory.Delete(AdapterPickleFamily.MarkerDirectory);
        }
        catch (IOException) { }
    }
}
