namespace Kangaroo.Tests.Fuzz;

/// <summary>
/// Turns (family, seed) into a case, and a master seed into a corpus. Seeds below <see cref="RandomSeedBase"/> are a
/// family's systematic mutations (seed i = the i-th); larger seeds are random mutations drawn from a
/// <see cref="Gen"/> seeded with (family, seed). Either way the case is a pure function of (family, seed) and of the
/// bases (which are deterministic too), so a failing case reruns alone with KANGAROO_FUZZ_CASE=family/seed.
/// </summary>
internal static class MutationGenerator
{
    public const long RandomSeedBase = 1_000_000;

    public static readonly IReadOnlyList<Family> Families =
    [
        new ConfigFamily(), new SafeTensorsHeaderFamily(), new WeightBytesFamily(), new TokenizerModelFamily(), new TokenizerConfigFamily(),
        new GenerationConfigFamily(), new ShardIndexFamily(), new AdapterConfigFamily(), new AdapterWeightsFamily(), new AdapterPickleFamily(),
        new OddFilesFamily(),
    ];

    public static int DefaultCaseCount => Families.Sum(f => f.Weight);

    public static Family Get(string name) =>
        Families.FirstOrDefault(f => f.Name == name) ?? throw new ArgumentException($"no fuzz family \"{name}\" (families: {string.Join(", ", Families.Select(f => f.Name))})");

    public static FuzzCase Create(string family, long seed)
    {
        var f = Get(family);
        var bases = FuzzBases.Instance;
        var g = new Gen(unchecked((int)Gen.Mix(Gen.Hash(family) ^ (ulong)seed)));
        var b = new CaseBuilder(family, seed, bases, g);
        if (seed < RandomSeedBase)
        {
            if (seed < 0 || seed >= f.Systematic.Count)
                throw new ArgumentOutOfRangeException(nameof(seed), $"family {family} has {f.Systematic.Count} systematic cases (seeds 0..{f.Systematic.Count - 1})");
            f.Systematic[(int)seed](b);
        }
        else
        {
            f.Random(b);
        }
        var c = b.Build();
        // What a written config means decides, on top of what the mutation says: a config that no longer describes the
        // checkpoint (or that the engine cannot compute faithfully) must be refused.
        var reasons = new List<string>();
        foreach (var op in c.Ops.OfType<FileOp.Write>())
        {
            if (op.Path == "config.json")
                reasons.AddRange(ConfigSemantics.RefuseReasons(op.Bytes, c.Base, adapter: false).Select(r => "config.json: " + r));
            else if (op.Path == FuzzBase.AdapterDirectory + "/config.json" && c.Base.AdapterWeights is not null)
                reasons.AddRange(ConfigSemantics.RefuseReasons(op.Bytes, c.Base, adapter: true).Select(r => "kangaroo-adapter/config.json: " + r));
        }
        if (reasons.Count == 0) return c;
        string all = c.ExpectReason is null ? string.Join("; ", reasons) : c.ExpectReason + "; " + string.Join("; ", reasons);
        return new FuzzCase
        {
            Family = c.Family, Seed = c.Seed, Base = c.Base, Description = c.Description, Expect = Expectation.MustRefuse, ExpectReason = all,
            Target = c.Target, Ops = c.Ops, Fields = c.Fields, Marker = c.Marker,
        };
    }

    /// <summary>
    /// The corpus of a run: each family's share of <paramref name="total"/> (by weight), its systematic seeds first, then
    /// random seeds derived from the master seed; families interleaved so that any prefix covers all of them.
    /// </summary>
    public static List<(string Family, long Seed)> Corpus(ulong masterSeed, int total, string? onlyFamily = null)
    {
        var families = onlyFamily is null ? Families : [Get(onlyFamily)];
        int weightSum = families.Sum(f => f.Weight);
        var counts = families.Select(f => (int)((long)total * f.Weight / weightSum)).ToArray();
        for (int i = 0; total - counts.Sum() > 0; i = (i + 1) % counts.Length) counts[i]++;
        var all = new List<(double Position, int Family, string Name, long Seed)>();
        for (int fi = 0; fi < families.Count; fi++)
        {
            var f = families[fi];
            int systematic = Math.Min(counts[fi], f.Systematic.Count);
            for (int j = 0; j < counts[fi]; j++)
            {
                long seed = j < systematic
                    ? j
                    : RandomSeedBase + (long)(Gen.Mix(masterSeed ^ Gen.Hash(f.Name) ^ Gen.Mix((ulong)j)) % 1_000_000_000UL);
                all.Add(((j + 0.5) / counts[fi], fi, f.Name, seed));
            }
        }
        return all.OrderBy(x => x.Position).ThenBy(x => x.Family).Select(x => (x.Name, x.Seed)).Distinct().ToList();
    }
}
