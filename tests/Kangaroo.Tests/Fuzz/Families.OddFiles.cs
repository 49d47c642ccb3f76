namespace Kangaroo.Tests.Fuzz;

/// <summary>
/// Odd file-system entries in place of a model file: a FIFO, a directory, links to /dev/zero, /dev/urandom, /dev/null,
/// an empty file, link loops, a dangling link, a 5 GiB sparse file, a missing file — and the harmless ones: a link to a
/// regular copy outside the directory (the Hugging Face cache layout), a relative link. Stray unrelated files (a FIFO
/// called tokenizer.json or README.md...) must not matter at all.
/// </summary>
internal sealed class OddFilesFamily : Family
{
    public override string Name => "odd-files";
    public override int Weight => 200;

    /// <summary>How much an entry matters: a required file, an optional one, the adapter folder, one that wins when present, or an unrelated file.</summary>
    private enum Role { Required, Optional, AdapterDirectory, Precedence, Stray }

    private static readonly (string Base, string Path, Role Role)[] Targets =
    [
        ("single", "config.json", Role.Required),
        ("single", "generation_config.json", Role.Optional),
        ("single", "tokenizer_config.json", Role.Optional),
        ("single", "tokenizer.model", Role.Required),
        ("single", "model.safetensors", Role.Required),
        ("single", "kangaroo-adapter", Role.AdapterDirectory),
        ("single", "kangaroo-adapter/config.json", Role.Required),
        ("single", "kangaroo-adapter/model.safetensors", Role.Required),
        ("single", "model.safetensors.index.json", Role.Precedence),
        ("single", "tokenizer.json", Role.Stray),
        ("single", "README.md", Role.Stray),
        ("single", "pytorch_model.bin", Role.Stray),
        ("sharded", "model.safetensors.index.json", Role.Required),
        ("sharded", "model-00001-of-00002.safetensors", Role.Required),
        ("pytorch", "kangaroo-adapter/pytorch_model.bin", Role.Required),
    ];

    private static readonly string[] Kinds =
        ["fifo", "directory", "dev-zero", "dev-urandom", "dev-null", "empty", "loop", "self-loop", "dangling", "sparse", "missing", "copy-link", "relative-link"];

    private static readonly List<(int Target, string Kind)> Combos = BuildCombos();

    private static List<(int, string)> BuildCombos()
    {
        var list = new List<(int, string)>();
        for (int t = 0; t < Targets.Length; t++)
        {
            foreach (string kind in Kinds)
            {
                bool absent = Targets[t].Role is Role.Stray or Role.Precedence;
                if (absent && kind is "missing" or "copy-link" or "relative-link") continue;
                list.Add((t, kind));
            }
        }
        return list;
    }

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } = Combos.Select(c => (Action<CaseBuilder>)(b => Apply(b, c.Target, c.Kind))).ToList();

    public override void Random(CaseBuilder b)
    {
        var (t, kind) = b.G.Pick(Combos);
        Apply(b, t, kind);
        if (b.G.Chance(0.3))
        {
            // A second odd entry on the same base.
            var same = Combos.Where(c => Targets[c.Target].Base == Targets[t].Base && c.Target != t && !Targets[t].Path.StartsWith(Targets[c.Target].Path + "/", StringComparison.Ordinal)
                                         && !Targets[c.Target].Path.StartsWith(Targets[t].Path + "/", StringComparison.Ordinal)).ToList();
            if (same.Count > 0)
            {
                var (t2, kind2) = b.G.Pick(same);
                Apply(b, t2, kind2);
            }
        }
    }

    private static void Apply(CaseBuilder b, int targetIndex, string kind)
    {
        var (baseName, path, role) = Targets[targetIndex];
        b.On(b.Bases.Get(baseName));
        var fb = b.Base;
        bool exists = fb.Files.Contains(path) || fb.Directories.Contains(path);
        string d = kind switch
        {
            "fifo" => $"{path} is a FIFO (named pipe)",
            "directory" => $"{path} is an empty directory",
            "dev-zero" => $"{path} is a symlink to /dev/zero",
            "dev-urandom" => $"{path} is a symlink to /dev/urandom",
            "dev-null" => $"{path} is a symlink to /dev/null",
            "empty" => $"{path} is an empty file",
            "loop" => $"{path} is a symlink loop ({path} → {path}.loop → {path})",
            "self-loop" => $"{path} is a symlink to itself",
            "dangling" => $"{path} is a dangling symlink",
            "sparse" => $"{path} is a 5 GiB sparse file{(exists && role != Role.AdapterDirectory ? " (its content, then zeros)" : "")}",
            "missing" => $"{path} is missing",
            "copy-link" => $"{path} is a symlink to a regular copy outside the model directory",
            _ => $"{path} is a relative symlink to the base file",
        };
        string leaf = Path.GetFileName(path);
        switch (kind)
        {
            case "fifo": b.Op(new FileOp.Fifo(path)); break;
            case "directory": b.Op(new FileOp.Mkdir(path)); break;
            case "dev-zero": b.Op(new FileOp.Symlink(path, "/dev/zero")); break;
            case "dev-urandom": b.Op(new FileOp.Symlink(path, "/dev/urandom")); break;
            case "dev-null": b.Op(new FileOp.Symlink(path, "/dev/null")); break;
            case "empty": b.Op(new FileOp.Write(path, [])); break;
            case "loop":
                b.Op(new FileOp.Symlink(path, leaf + ".loop"));
                b.Op(new FileOp.Symlink(path + ".loop", leaf));
                b.Target(path);
                break;
            case "self-loop": b.Op(new FileOp.Symlink(path, leaf)); break;
            case "dangling": b.Op(new FileOp.Symlink(path, leaf + ".does-not-exist")); break;
            case "sparse":
                b.Op(new FileOp.Sparse(path, exists && role != Role.AdapterDirectory ? fb.Read(path) : [], 5L << 30));
                break;
            case "missing": b.Op(new FileOp.Delete(path)); break;
            case "copy-link": b.Op(new FileOp.SymlinkToCopy(path)); break;
            default:
                // Relative to the link's folder, as in ~/.cache/huggingface/hub/models--x/snapshots/<rev>/f -> ../../blobs/<sha>.
                b.Op(new FileOp.RelativeLinkToBase(path));
                break;
        }

        bool harmless = kind is "copy-link" or "relative-link";
        switch (role)
        {
            case Role.Required:
                if (harmless) b.Benign(d); else b.Refuse(d, "a required file is unreadable");
                break;
            case Role.Optional:
                if (harmless || kind == "missing") b.Benign(d);
                else if (kind is "dangling" or "loop" or "self-loop" or "directory") b.Step(d);
                else b.Refuse(d, "an optional file is present but not a readable file of sane size");
                break;
            case Role.AdapterDirectory:
                if (harmless || kind == "missing") b.Benign(d); else b.Step(d);
                break;
            case Role.Precedence:
                if (kind is "dangling" or "loop" or "self-loop" or "directory") b.Step(d);
                else b.Refuse(d, $"{path} takes precedence when present, and it is unreadable");
                break;
            default:
                b.Benign(d + " (a file the loader has no reason to open)");
                break;
        }
    }
}
