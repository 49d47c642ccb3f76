using Kangaroo.Speculative;

namespace Kangaroo.Cli;

/// <summary>The token-tree options shared by <c>generate</c> and <c>bench</c>: --tree [--tree-top-k K --tree-threshold T --tree-budget N].</summary>
internal static class TreeArguments
{
    public static readonly string[] ValueOptions = ["tree-top-k", "tree-threshold", "tree-budget"];
    public const string Flag = "tree";

    public const string Help = """
          --tree               Draft a dynamic token tree and verify it in one pass (greedy or sampling, lossless)
          --tree-top-k K       Children proposed per node, and most nodes per level (default 10)
          --tree-threshold T   Smallest path probability of a node besides its parent's best child, in [0, 1] (default 0.1)
          --tree-budget N      Most drafted nodes per round, 1 to 256 (default 16)
        """;

    /// <summary>The tree options, or null without --tree (then the tree values are a usage error).</summary>
    public static TokenTreeOptions? Parse(Arguments a)
    {
        if (!a.Flag(Flag))
        {
            if (ValueOptions.Any(o => a.String(o) is not null))
                throw new UsageException("--tree-top-k, --tree-threshold and --tree-budget need --tree");
            return null;
        }
        var tree = new TokenTreeOptions
        {
            TopK = a.Int("tree-top-k") ?? 10,
            Threshold = a.Float("tree-threshold") ?? 0.1f,
            Budget = a.Int("tree-budget") ?? 16,
        };
        try
        {
            tree.Validate();
        }
        catch (InvalidRequestException e)
        {
            throw new UsageException(e.Message);
        }
        return tree;
    }
}
